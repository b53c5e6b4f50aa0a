/// mimalloc instead of the system allocator: the ingest pipeline allocates on one thread and
/// frees on another, which serialises glibc's malloc on its arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    floe::main()
}
