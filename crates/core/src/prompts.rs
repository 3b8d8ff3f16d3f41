//! Prompt sets. Built-in `short` / `medium` / `long` are fixed texts with 50 / 120 / 200 generated tokens; `pN`
//! (e.g. `p512`) is an exact prompt length, llama-bench's `-p 512`, built from filler prose so that *every backend*
//! tokenizes it to exactly N tokens (BOS included, as llama-bench counts). Such a prompt is named `p512-n128`
//! after its prompt and generated lengths.
use anyhow::{bail, ensure, Result};
use sha2::{Digest, Sha256};

use crate::backend::LoadedModel;
use tokbench_record::setup::PromptInfo;

#[derive(Debug, Clone, PartialEq)]
pub enum PromptSpec {
    Text { name: String, text: String, gen_tokens: usize },
    Length { prompt_tokens: usize, gen_tokens: usize },
}

impl PromptSpec {
    pub fn name(&self) -> String {
        match self {
            PromptSpec::Text { name, .. } => name.clone(),
            PromptSpec::Length { prompt_tokens, gen_tokens } => format!("p{prompt_tokens}-n{gen_tokens}"),
        }
    }

    pub fn gen_tokens(&self) -> usize {
        match self {
            PromptSpec::Text { gen_tokens, .. } | PromptSpec::Length { gen_tokens, .. } => *gen_tokens,
        }
    }

    /// A built-in set by name: `short`, `medium`, `long`.
    pub fn builtin(name: &str) -> Option<PromptSpec> {
        let (text, gen_tokens) = match name {
            "short" => (SHORT, 50),
            "medium" => (MEDIUM, 120),
            "long" => (LONG, 200),
            _ => return None,
        };
        Some(PromptSpec::Text { name: name.to_string(), text: text.to_string(), gen_tokens })
    }
}

pub const BUILTIN_NAMES: [&str; 3] = ["short", "medium", "long"];

/// A prompt ready to run on one loaded model.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedPrompt {
    pub name: String,
    pub text: String,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    /// Tokens put in the KV cache before the timed prompt (see [`depth_tokens`]).
    pub depth: usize,
}

impl ResolvedPrompt {
    pub fn info(&self) -> PromptInfo {
        PromptInfo {
            name: self.name.clone(),
            prompt_tokens: self.prompt_tokens,
            gen_tokens: self.gen_tokens,
            text_sha256: hex(&Sha256::digest(self.text.as_bytes())),
            depth: self.depth,
        }
    }
}

pub fn resolve(spec: &PromptSpec, model: &dyn LoadedModel) -> Result<ResolvedPrompt> {
    resolve_at_depth(spec, 0, model)
}

/// The benchmark id's prompt part: the prompt's name, with `@dN` when `depth` tokens precede it in the cache.
pub fn name_at_depth(spec: &PromptSpec, depth: usize) -> String {
    match depth {
        0 => spec.name(),
        d => format!("{}@d{d}", spec.name()),
    }
}

/// [`resolve`] for a prompt that follows `depth` tokens already in the KV cache: they count against the context.
pub fn resolve_at_depth(spec: &PromptSpec, depth: usize, model: &dyn LoadedModel) -> Result<ResolvedPrompt> {
    ensure!(spec.gen_tokens() > 0, "prompt set {:?} asks for 0 generated tokens: ask for at least 1", spec.name());
    let ctx = model.context_size().saturating_sub(depth);
    let too_long = |prompt_tokens: usize| {
        let needed = prompt_tokens + spec.gen_tokens() + depth;
        anyhow::anyhow!(
            "prompt {:?} has {prompt_tokens} tokens and asks for {} more{}, {needed} in all, but the context holds {}: \
             raise --ctx-size to at least {needed}, or shorten the prompt",
            spec.name(),
            spec.gen_tokens(),
            if depth > 0 { format!(" after a depth of {depth}") } else { String::new() },
            model.context_size()
        )
    };
    if let PromptSpec::Length { prompt_tokens, gen_tokens } = spec {
        if prompt_tokens + gen_tokens > ctx {
            return Err(too_long(*prompt_tokens));
        }
    }
    let (text, prompt_tokens) = match spec {
        PromptSpec::Text { text, .. } => {
            ensure!(!text.trim().is_empty(), "prompt set {:?} has an empty prompt text", spec.name());
            (text.clone(), model.count_prompt_tokens(text)?)
        }
        PromptSpec::Length { prompt_tokens, .. } => (exact_length_text(model, *prompt_tokens)?, *prompt_tokens),
    };
    if prompt_tokens + spec.gen_tokens() > ctx {
        return Err(too_long(prompt_tokens));
    }
    Ok(ResolvedPrompt { name: name_at_depth(spec, depth), text, prompt_tokens, gen_tokens: spec.gen_tokens(), depth })
}

/// The `depth` tokens put in the KV cache before a prompt at that depth: the filler text, repeated and tokenized
/// once (real text, as a long conversation's history would be), cut to length; empty for depth 0.
pub fn depth_tokens(model: &dyn LoadedModel, depth: usize) -> Result<Vec<u32>> {
    if depth == 0 {
        return Ok(Vec::new());
    }
    let mut text = String::from(FILLER);
    loop {
        let tokens = model.tokenize(&text)?;
        if tokens.len() >= depth {
            return Ok(tokens[..depth].to_vec());
        }
        let repeats = depth.div_ceil(tokens.len().max(1)) + 1;
        text = std::iter::repeat_n(FILLER, repeats).collect::<Vec<_>>().join(" ");
    }
}

/// Text that `model` tokenizes to exactly `n` tokens. Detokenizing a prefix of the filler's tokens and
/// re-tokenizing it can merge or split at the cut, so the prefix length is corrected until the count is exact.
pub fn exact_length_text(model: &dyn LoadedModel, n: usize) -> Result<String> {
    ensure!(n > 0, "a prompt needs at least 1 token (--prompt-tokens 0 was given)");
    let overhead = model.tokenize("")?.len(); // BOS and the like
    ensure!(n > overhead, "a prompt of {n} tokens is shorter than the {overhead} special tokens the model adds");
    let mut filler = String::from(FILLER);
    let mut content = strip_prefix_tokens(model.tokenize(&filler)?, overhead);
    let mut k = n - overhead;
    let mut tried = std::collections::BTreeSet::new();
    for _ in 0..256 {
        if k > content.len() {
            // Re-tokenizing can merge tokens, so a prefix may need more filler tokens than the prompt length.
            filler.push(' ');
            filler.push_str(FILLER);
            content = strip_prefix_tokens(model.tokenize(&filler)?, overhead);
            continue;
        }
        if !tried.insert(k) {
            k += 1; // oscillating around an unreachable count: walk forward
            continue;
        }
        let text = model.detokenize(&content[..k])?;
        let got = model.tokenize(&text)?.len();
        if got == n {
            return Ok(text);
        }
        k = (k as i64 + n as i64 - got as i64).max(1) as usize;
    }
    bail!("could not build a prompt of exactly {n} tokens for this tokenizer; try a nearby length")
}

fn strip_prefix_tokens(mut tokens: Vec<u32>, n: usize) -> Vec<u32> {
    tokens.drain(..n.min(tokens.len()));
    tokens
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// The texts below are tokbench's own, written for this purpose.
const SHORT: &str = "Explain in two sentences why a lighthouse keeper would log the weather every night.";

const MEDIUM: &str = "You are helping a small bakery plan its week. On Monday it sold 140 loaves, on Tuesday 95, \
on Wednesday 120 and on Thursday 160. Flour arrives on Fridays in sacks of 25 kilograms and each loaf needs 400 grams. \
The owner wants enough flour for next week if sales grow by a tenth, with one spare sack in case a delivery is late. \
Work out how many sacks to order, show each step of the arithmetic, and finish with a one-line recommendation.";

const LONG: &str = "Read the field notes below and write a short report for the town council.\n\n\
Notes, day one: the river was higher than the painted mark on the old mill by about a hand's width. Two families on \
Willow Lane had moved their cars to the church car park before dusk. The footbridge by the school was closed with a \
rope and a hand-written sign, which the wind had turned around by the evening. Volunteers filled sandbags at the fire \
station from four until nine and ran out of sand twice.\n\n\
Notes, day two: rain eased before dawn. The river stayed level until noon and then dropped slowly. The bakery on \
Bridge Street opened late because its cellar had a few centimetres of water; the owner pumped it out with a borrowed \
pump. The bus to the valley villages ran every other hour instead of every hour. Nobody was hurt, but an older man on \
Mill Row needed help moving his stove upstairs, and the volunteers who helped him said the stairs were steep and \
poorly lit.\n\n\
Notes, day three: the footbridge reopened after the council engineer inspected it and found one loose railing, which \
was fixed the same day. The fire station still has about sixty unused sandbags. Several residents asked whether the \
town could lend pumps in future, and whether the warning could come earlier: most heard about the high water from \
neighbours rather than from the council.\n\n\
The report should summarise what happened, list what worked and what did not, and end with three concrete \
suggestions for the next flood, each with a rough cost.";

/// Filler for exact-length prompts: plain prose, repeated as needed.
const FILLER: &str = "The workshop at the end of the lane had been a forge, then a garage, and now it made clocks. \
Every morning the clockmaker opened the shutters, swept the shavings from the bench and wound each clock on the wall, \
one after another, listening for the small hesitation that meant a spring was tired or a pivot needed oil. Customers \
brought her kitchen clocks that had stopped at the hour of some family argument, carriage clocks that had crossed \
oceans in trunks, and once a tower movement in twelve crates, carried in by four patient men. She kept a ledger of \
every repair: the date, the fault, the part she made, and how long the clock ran true afterwards. Over the years the \
ledger became a kind of map of the town, showing which streets were damp, which houses were cold in winter, and \
which families wound their clocks on Sundays and which forgot until the hands had stopped.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{GenerationRequest, ModelDetails};
    use crate::metrics::TraceRecorder;

    /// A toy tokenizer: BOS + one token per whitespace-separated word, with a merge rule that makes some cuts
    /// non-invertible (a word "of" glued to the next word), so exact-length fitting has to correct itself.
    struct WordModel;
    impl LoadedModel for WordModel {
        fn details(&self) -> ModelDetails {
            ModelDetails::default()
        }
        fn context_size(&self) -> usize {
            4096
        }
        fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
            let mut out = vec![0];
            let mut glue = false;
            for w in text.split_whitespace() {
                if glue {
                    glue = false;
                    continue;
                }
                glue = w == "of";
                out.push(w.len() as u32 + 1);
            }
            Ok(out)
        }
        fn detokenize(&self, tokens: &[u32]) -> Result<String> {
            Ok(tokens
                .iter()
                .map(|&t| "x".repeat(t.max(1) as usize - 1).replace("xx", "of"))
                .collect::<Vec<_>>()
                .join(" "))
        }
        fn generate(&mut self, _: &GenerationRequest<'_>, _: &mut TraceRecorder) -> Result<()> {
            unreachable!()
        }
    }

    #[test]
    fn exact_length_prompts_tokenize_to_exactly_n() {
        for n in [2, 3, 17, 128, 512, 1000] {
            let text = exact_length_text(&WordModel, n).unwrap();
            assert_eq!(WordModel.tokenize(&text).unwrap().len(), n, "n = {n}");
        }
    }

    #[test]
    fn impossible_requests_are_clear_errors() {
        assert!(exact_length_text(&WordModel, 0).unwrap_err().to_string().contains("at least 1 token"));
        assert!(exact_length_text(&WordModel, 1).unwrap_err().to_string().contains("special tokens"));
        let e = resolve(&PromptSpec::Length { prompt_tokens: 4000, gen_tokens: 200 }, &WordModel).unwrap_err();
        assert!(e.to_string().contains("raise --ctx-size to at least 4200"), "{e}");
        let e = resolve(&PromptSpec::Length { prompt_tokens: 10, gen_tokens: 0 }, &WordModel).unwrap_err();
        assert!(e.to_string().contains("0 generated tokens"), "{e}");
    }

    #[test]
    fn builtins_have_the_documented_generation_lengths() {
        let lens: Vec<usize> = BUILTIN_NAMES.iter().map(|n| PromptSpec::builtin(n).unwrap().gen_tokens()).collect();
        assert_eq!(lens, vec![50, 120, 200]);
        assert!(PromptSpec::builtin("huge").is_none());
    }
}
