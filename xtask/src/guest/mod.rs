//! Driving booted systems: the console driver (wait for lines, type, read,
//! one list of boot failures, boot to the shell) and the command lines that
//! start UML and qemu guests.

pub mod console;
pub mod qemu;
pub mod uml;
