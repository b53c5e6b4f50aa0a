/// jemalloc, measured against mimalloc and glibc's malloc on the same code (BENCHMARKS.md,
/// eighth session): mimalloc kept freed memory, so that peak RSS grew with the input (151/241
/// MiB at 1M/10M events; jemalloc 102/116); glibc's malloc is 19% slower than jemalloc on the
/// Kafka-message path, where the consumer allocates each message and a decoder frees it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    floe::main()
}
