//! Helpers shared by the bench programs: one concept per file.
//!
//! * [`cli`]: the arguments cargo adds to a bench's command line, which every bench accepts.
//! * [`cores`]: which cores a thread may run on, and pinning it (and what it starts) to some.
//! * [`counting`]: a stream wrapper that counts every byte read and written, so "bytes on the
//!   wire" is a measurement, not an estimate.
//! * [`floor`]: the least a WebSocket push server can do (one frame built per tick, one write
//!   per client), run as a child process beside the real server for comparison.
//! * [`http_client`]: a minimal HTTP/1.1 keep-alive client over that counting stream, which
//!   also knows where the headers end and the payload starts.
//! * [`neighbour`]: a noisy neighbour, a child process spinning on one core for a bounded
//!   time, so a server can be measured on a machine that is busy with something else too.
//! * [`server`]: the real app, started in-process on its own threads or as a child process.
//! * [`stats`]: percentiles (exact nearest rank over every sample) and the summary of a
//!   distribution the tables are made of; needs no other module, so the tests include it too.
//! * [`tick_fields`]: the `seq` and `ts` of a tick message, and the clock `ts` is read against.
//! * [`plot`]: a measured line with its points, and the legend, drawn alike in every plot.
//! * [`output`]: where results go (`target/tickerlab-bench/`) and the Markdown/CSV writers.
#![allow(dead_code)] // each bench binary uses a different subset

pub mod cli;
pub mod cores;
pub mod counting;
pub mod floor;
pub mod http_client;
pub mod neighbour;
pub mod output;
pub mod plot;
pub mod server;
pub mod stats;
pub mod tick_fields;
