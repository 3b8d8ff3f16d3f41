//! Inference servers as tokbench backends, over HTTP (no C/C++):
//! - [`api`]: OpenAI-compatible completions / chat and Ollama's generate API: request bodies, stream chunks;
//! - [`stream`]: reading a streamed body on its own thread, timestamping lines as they arrive, with timeouts;
//! - [`client`]: one streamed request, with errors that name the server and the fix;
//! - [`launch`]: starting a server from the config's command, health check, log capture, stopping it (Ctrl-C too);
//! - [`backend`]: [`backend::HttpBackend`], the `Backend` the runner drives, and its concurrency sweep.
pub mod api;
pub mod backend;
pub mod client;
pub mod launch;
pub mod stream;

pub use backend::HttpBackend;
