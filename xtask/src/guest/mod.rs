//! Driving booted systems: the console driver and the command lines that
//! start UML and qemu guests.

pub mod console;
