//! The `cairn` command: a thin front end over the engine crates. Parses
//! arguments, gets the password, runs one command, and maps every failure to
//! a one-line message and an exit code (errors.rs).

mod cli;
mod commands;
mod errors;
mod output;
mod password;
mod progress;
mod signals;

use clap::Parser;

/// Backup and restore allocate and free megabyte-sized buffers on many
/// threads. glibc's default raises its mmap threshold after such frees up to
/// 32 MiB and then keeps freed pack-sized buffers in per-thread arenas: the
/// scale-1 benchmark's initial backup peaked at 177 MiB. A fixed 8 MiB
/// threshold sends pack buffers (16 MiB) through mmap, returned when freed,
/// while chunks and read windows stay in the arenas: ~105 MiB. A 256 KiB
/// threshold reached 85 MiB but paid page faults for every chunk (+50% CPU in
/// check and restore). docs/BENCHMARKS.md has the measurements.
const MMAP_THRESHOLD: i32 = 8 << 20;

/// Restore and check --read-data free and allocate blob-sized buffers all
/// the time; with glibc's default trim threshold (128 KiB once the mmap
/// threshold is fixed) each free at the top of an arena hands the pages back
/// and the next blob faults them in again (check spent a third of its CPU in
/// the kernel doing that). Keeping up to 8 MiB at the top of each arena cut
/// check's time by a quarter for 2 MiB more peak memory; 16 MiB and more
/// gained nothing further and cost 8-12 MiB. Backup is left alone: its peak
/// rose by 10-15 MiB and its time did not move.
const TRIM_THRESHOLD: i32 = 8 << 20;

/// Backup hands every chunk from the thread that read it to the one that
/// seals it, and the sealed envelope on to the packer. With an arena per
/// thread (glibc's default) each buffer is freed into another thread's
/// arena and the next is carved and faulted in afresh; one arena for all
/// hands a freed buffer straight to the next allocation. The benchmark's
/// initial backup (6 runs alternating with and without): page faults
/// 156,000-176,000 -> 63,000-86,000, system time 1.07-1.26 s -> 0.88-1.15 s,
/// peak RSS unchanged. Allocations are per chunk, not per byte, so the
/// shared lock is not contended. Mount likewise hands decoded blobs between
/// its request threads and its prefetch threads: reading the scale-1
/// dataset through it peaked at 289 MB with an arena per thread, 226 MB
/// with one, in the same time. Check too: each arena keeps up to
/// TRIM_THRESHOLD of freed memory, so its peak depended on how many arenas
/// its threads (rayon's, the I/O runtime's, the blocking pool's) happened to
/// touch: 300,000 and 600,000 small blobs peaked at 84 and 100 MiB with
/// glibc's default (16 arenas on 2 cores) and measured 89 then 121 MiB on a
/// busy machine; with one arena 71 and 85 MiB, in the same time (check
/// --read-data of 1.5 GB: 3.23-3.35 s against 3.18-4.09). Prune alike: of
/// 577,000 blobs, 95-101 MiB with glibc's default, 84-89 with one arena,
/// 0.60-0.70 s against 0.61-0.83.
const SHARED_ARENAS: i32 = 1;

fn tune_allocator(command: &cli::Command) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        if matches!(command, cli::Command::Restore(_) | cli::Command::Check(_)) {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
        if matches!(
            command,
            cli::Command::Backup(_) | cli::Command::Mount(_) | cli::Command::Check(_) | cli::Command::Prune(_)
        ) {
            libc::mallopt(libc::M_ARENA_MAX, SHARED_ARENAS);
        }
    }
}

/// Blocks SIGINT and SIGTERM in every thread and has one thread wait for
/// them: on either, what this run left unfinished in the repository (staged
/// packs, files being written, its run marker) is removed, one line says
/// so, and the process exits 130 or 143 as a shell reports the signal.
/// Commands cairn runs get the default mask back (std resets it at spawn);
/// those in process groups of their own are stopped first.
fn handle_interrupts(command: &'static str) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if set.thread_block().is_err() {
        return;
    }
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        let Ok(signal) = set.wait() else { return };
        let removed = signals::stop_work();
        eprintln!(
            "cairn: {command} interrupted by {signal}; the repository is intact ({removed} unfinished file(s) of this run removed)"
        );
        std::process::exit(128 + signal as i32);
    });
    if spawned.is_err() {
        let _ = set.thread_unblock();
    }
}

/// A backup holds each folder on the way down open (entries are reached
/// through their folder's descriptor, never by path), so a tree deeper than
/// the open-files limit (1,024 by default) was listed only to that depth.
/// The soft limit is raised to the hard one, as Go does for restic; it is
/// a per-process setting and cairn closes what it opens.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn main() {
    // Everything cairn creates is its user's alone, whatever the umask:
    // repository files (key files above all: a copy lets anyone guess the
    // password offline), the cache, and a restore's files and folders until
    // the snapshot's own modes are set on them. Commands cairn runs
    // (--stdin-from-command, --password-command) inherit it, so what they
    // write is private too.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    raise_open_files_limit();
    let cli = cli::Cli::parse();
    tune_allocator(&cli.command);
    if !cli.command.handles_signals() {
        handle_interrupts(cli.command.name());
    }
    let verbose = cli.global.verbose > 0;
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A write refused because a signal is being handled: the signal
            // thread reports it and ends the process.
            while cairn_backend::interrupt::interrupted() {
                std::thread::park();
            }
            if errors::is_broken_pipe(&e) {
                // `cairn dump ... | head`: the reader went away; not an error worth a message.
                std::process::exit(errors::EXIT_BROKEN_PIPE);
            }
            eprintln!("{}", errors::message(&e));
            errors::exit_code(&e)
        }
    };
    if verbose {
        eprintln!("cairn: {}", cairn_backend::request_counts());
        let cold = cairn_backend::cold_request_counts();
        if cold.total() > 0 {
            eprintln!("cairn: of which to the cold location: {cold}");
        }
    }
    std::process::exit(code);
}
