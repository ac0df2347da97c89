//! `arbiter`: a thin command line over the Arbiter libraries.

fn main() {}
