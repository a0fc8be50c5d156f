//! Writing to stdout when the reader may have gone (`skillcheck diff a b | head`): a closed
//! pipe ends the output quietly instead of panicking as `println!` does.

use std::io::{self, Write};

/// Writes `text` to stdout. A closed pipe is not an error: the reader has all it wanted.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// [`print`] for commands that have nothing better to do with a failed write than say so.
pub fn emit(text: &str) {
    if let Err(e) = print(text) {
        eprintln!("skillcheck: error: cannot write to stdout: {e}");
    }
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::emit(&(format!($($arg)*) + "\n"))
    };
}

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::emit(&format!($($arg)*))
    };
}

pub(crate) use {out, outln};
