/// jemalloc instead of the system allocator or mimalloc (BENCHMARKS.md, eighth session): the
/// ingest pipeline allocates on one thread and frees on another, which glibc's malloc serves
/// more slowly (the Kafka-message path 20% slower), and mimalloc kept freed memory so that peak
/// RSS grew with the input (151/241 MiB at 1M/10M events, against jemalloc's 101/131).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    floe::main()
}
