//! One real generation gives TTFT, decode time and peak RAM at once. Criterion measures one quantity per
//! benchmark, so without sharing, every generation would be run three times. The bank runs each generation once
//! and hands its numbers to the three measurements in the same order, so all three analyse the same runs, and the
//! tokbench JSON of the benchmark holds exactly those runs.
//!
//! One exception: criterion sizes its samples from the *wall time* of its warm-up call (the first call for each
//! measurement), so that call always runs a fresh generation (its value is discarded by criterion, and it is not
//! added to the shared runs); a warm-up served from the shared runs would take no time and make criterion ask for
//! thousands of iterations.
use anyhow::Result;
use tokbench_core::backend::LoadedModel;
use tokbench_core::engine::measure_once;
use tokbench_core::prompts::ResolvedPrompt;
use tokbench_record::results::{LoadMeasurement, RunSample};
use tokbench_record::setup::Sampling;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Ttft = 0,
    Decode = 1,
    Ram = 2,
}

pub struct SampleBank<'a> {
    model: &'a mut dyn LoadedModel,
    load: &'a LoadMeasurement,
    prompt: &'a ResolvedPrompt,
    sampling: Sampling,
    warmup: usize,
    last_warmup: Option<RunSample>,
    samples: Vec<RunSample>,
    taken: [usize; 3],
    warmed_stream: [bool; 3],
    criterion_warmup: Option<RunSample>,
}

impl<'a> SampleBank<'a> {
    pub fn new(
        model: &'a mut dyn LoadedModel,
        load: &'a LoadMeasurement,
        prompt: &'a ResolvedPrompt,
        sampling: Sampling,
        warmup: usize,
    ) -> Self {
        SampleBank {
            model,
            load,
            prompt,
            sampling,
            warmup,
            last_warmup: None,
            samples: Vec::new(),
            taken: [0; 3],
            warmed_stream: [false; 3],
            criterion_warmup: None,
        }
    }

    /// Runs the discarded warmup generations (once) and returns the last one, for sizing criterion's sampling.
    pub fn warm_up(&mut self) -> Result<&RunSample> {
        if self.last_warmup.is_none() {
            for _ in 0..self.warmup.max(1) {
                self.last_warmup = Some(measure_once(self.model, self.load, self.prompt, self.sampling)?);
            }
        }
        Ok(self.last_warmup.as_ref().expect("set above"))
    }

    /// The next `n` generations of `stream`, running new ones when this stream has used up what the others made.
    /// A stream's first call is criterion's warm-up and gets a fresh generation of its own (see the module docs).
    pub fn take(&mut self, stream: Stream, n: usize) -> Result<&[RunSample]> {
        self.warm_up()?;
        if !std::mem::replace(&mut self.warmed_stream[stream as usize], true) && n == 1 {
            self.criterion_warmup = Some(measure_once(self.model, self.load, self.prompt, self.sampling)?);
            return Ok(std::slice::from_ref(self.criterion_warmup.as_ref().expect("set above")));
        }
        let from = self.taken[stream as usize];
        while self.samples.len() < from + n {
            self.samples.push(measure_once(self.model, self.load, self.prompt, self.sampling)?);
        }
        self.taken[stream as usize] = from + n;
        Ok(&self.samples[from..from + n])
    }

    /// Every timed generation run so far (warmups excluded).
    pub fn samples(&self) -> &[RunSample] {
        &self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokbench_core::backend::{GenerationRequest, ModelDetails};
    use tokbench_core::metrics::TraceRecorder;

    /// Each generation emits the generation's serial number as its token, so runs can be told apart.
    struct Counter(u32);
    impl LoadedModel for Counter {
        fn details(&self) -> ModelDetails {
            ModelDetails::default()
        }
        fn context_size(&self) -> usize {
            64
        }
        fn tokenize(&self, _: &str) -> Result<Vec<u32>> {
            Ok(vec![1])
        }
        fn detokenize(&self, _: &[u32]) -> Result<String> {
            unreachable!()
        }
        fn generate(&mut self, _: &GenerationRequest<'_>, trace: &mut TraceRecorder) -> Result<()> {
            self.0 += 1;
            trace.tokenized(1);
            trace.prefill_done();
            trace.token(self.0);
            Ok(())
        }
    }

    #[test]
    fn streams_share_runs_and_criterion_warmups_are_fresh() {
        let prompt = ResolvedPrompt { name: "p".into(), text: "x".into(), prompt_tokens: 1, gen_tokens: 1, depth: 0 };
        let mut model = Counter(0);
        let load = LoadMeasurement { load_s: 0.0, rss_before_bytes: 0, rss_after_bytes: 0, rss_peak_bytes: None };
        let mut bank = SampleBank::new(&mut model, &load, &prompt, Sampling::GREEDY, 2);
        let ids = |runs: &[RunSample]| runs.iter().map(|r| r.tokens[0]).collect::<Vec<_>>();
        // Generations 1-2: engine warmup. 3: TTFT's criterion warm-up. 4-7: shared runs.
        assert_eq!(ids(bank.take(Stream::Ttft, 1).unwrap()), vec![3]);
        assert_eq!(ids(bank.take(Stream::Ttft, 2).unwrap()), vec![4, 5]);
        assert_eq!(ids(bank.take(Stream::Ttft, 2).unwrap()), vec![6, 7]);
        // Decode's warm-up is fresh (8); then it reads the same shared runs as TTFT, and extends them when needed.
        assert_eq!(ids(bank.take(Stream::Decode, 1).unwrap()), vec![8]);
        assert_eq!(ids(bank.take(Stream::Decode, 3).unwrap()), vec![4, 5, 6]);
        assert_eq!(ids(bank.take(Stream::Decode, 2).unwrap()), vec![7, 9]);
        assert_eq!(ids(bank.samples()), vec![4, 5, 6, 7, 9]);
    }
}
