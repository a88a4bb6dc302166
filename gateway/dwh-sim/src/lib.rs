//! `dwh-sim`: a stand-in for the DWH Terpusat web service.
//!
//! It generates a synthetic population deterministically from a seed (valid NIKs and
//! No KKs, every field the DWH answers, including the protected ones the gateway must
//! remove) and answers `CALL_NIK`, `CALL_VERIFY_BY_ELEMEN` and `CALL_BY_ELEMEN` in the
//! DWH's JSON shape. It is the upstream of Gerbang's end-to-end tests and the "direct
//! upstream" of its benchmarks, so the hot path is lock-free: lookups binary-search
//! immutable tables and the counters are atomics.
//!
//! `POST /dukcapil/balikan/{pengguna}` takes a batch of data balikan (the data a
//! Pengguna returns to Dukcapil under its PKS, `{"data":[{"NIK":"…","NOP_PBB_P2":"…"},…]}`,
//! at most 1,000 records), checks its shape and answers `Data Balikan Diterima` with the
//! number of records, or the DWH's error page. It keeps only counts.
//!
//! Below `/portal/` it plays the DWH's Web Portal: a page, its assets and a NIK search,
//! plus the export, download, bulk search and write form the gateway must refuse
//! (art. 30(2)); it trusts the User ID the gateway asserts in a header.
//!
//! Test hooks below `/__sim/` report and reset counters (lookups, portal requests,
//! balikan batches and their records), list sample NIKs by kind, return full records, add
//! an artificial delay (to lookups and balikan batches), show the last data request (a
//! lookup or a balikan batch) exactly as it was received (`last`), and make the simulator
//! answer as a DWH with a bug would (`misbehave`: verification answers carrying values, a
//! lookup answered with another person's record; balikan batches are never misanswered).
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use gerbang_dwh_sim::{Population, SimState, serve};
//!
//! let state = Arc::new(SimState::new(Population::generate(42, 10_000)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! tokio::spawn(serve(listener, state, None));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod balikan;
mod date;
mod geo;
mod handlers;
mod json;
mod nik;
mod population;
mod portal;
mod record;
mod rng;
mod score;
mod server;
mod vocab;

pub use crate::population::{Population, RecordStatus, SampleKind, UnknownSampleKind};
pub use crate::portal::IDENTITY_HEADER as PORTAL_IDENTITY_HEADER;
pub use crate::record::{FUZZY_FIELDS, NUMERIC_FIELDS, PROTECTED_FIELDS, RECORD_FIELDS};
pub use crate::server::{Misbehaviour, Received, ServerTls, SimState, Stats, TlsError, serve};
