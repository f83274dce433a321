//! The one place where the speaker talks to the kernel below what safe crates offer
//! (design rule 6): raw packet sockets for L2 and the TCP MD5 socket option for BGP.
//! Everything else in the crate is `unsafe`-free; keep every `unsafe` block here, small,
//! with a `// SAFETY:` comment.
#![allow(unsafe_code)]
pub mod md5;
pub mod packet;
