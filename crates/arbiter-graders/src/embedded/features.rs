//! What the heads see: sentence embeddings of parts of the sample, plus optional cheap lexical
//! cues. The feature layout is recorded in the heads file, so a head is only ever applied to the
//! features it was trained on.

use arbiter_core::{Role, Sample};
use serde::{Deserialize, Serialize};

/// One block of features, in the order they are concatenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureBlock {
    /// Mean-pooled, unit-length embedding of the graded reply (the sentence embedding;
    /// truncated to the heads' token limit).
    Completion,
    /// Element-wise max over the reply's token states: local cues (an apology, a refusal
    /// sentence) that averaging dilutes. Comes from the same encoder pass as `Completion`.
    CompletionMax,
    /// Mean of the static (context-free) word-piece embeddings of the whole reply (up to 512
    /// pieces), unit length: a bag of words in the encoder's vocabulary space. A table lookup,
    /// no encoder pass, so it covers the parts of long replies the encoder does not see.
    StaticMean,
    /// Element-wise max of the same static word-piece embeddings.
    StaticMax,
    /// Embedding of the last user turn (first [`USER_MAX_TOKENS`] tokens): what was asked.
    LastUser,
    /// Cosine between the last user turn's and the reply's embeddings: does the reply address
    /// the request?
    UserCosine,
    /// Embedding of the reply's first sentence, where refusals and apologies live.
    CompletionOpening,
    /// Hand-written lexical indicators ([`LEXICAL_CUES`]) plus length.
    Lexical,
    /// The request and the reply read together by the encoder (`[CLS] last user turn [SEP]
    /// reply [SEP]`), mean-pooled over the reply's tokens, unit length: whether a reply
    /// complies, and whether what it says is harmful, depends on what was asked.
    Pair,
    /// Refusal and compliance openings ([`OPENING_CUES`]) in the reply's first 200 bytes,
    /// where a refusal or a "Sure, here is" lives.
    OpeningLexical,
}

/// Token limit for the last user turn (it is context, not the graded text).
pub const USER_MAX_TOKENS: usize = 64;

/// What a block needs the encoder to embed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Text {
    /// The reply, up to the heads' token limit.
    Completion,
    /// The last user turn, up to [`USER_MAX_TOKENS`].
    LastUser,
    /// The reply's first sentence.
    Opening,
    /// The last user turn and the reply, one sequence ([`FeatureBlock::Pair`]).
    Pair,
}

impl Text {
    /// This text of a sample.
    pub fn of(self, sample: &Sample) -> String {
        match self {
            Text::Completion => sample.completion_text().to_string(),
            Text::LastUser => last_user_turn(sample),
            Text::Opening => opening(sample.completion_text()).to_string(),
            Text::Pair => sample.completion_text().to_string(),
        }
    }
}

/// The last user turn of the prompt ("" if there is none).
pub fn last_user_turn(sample: &Sample) -> String {
    sample
        .prompt
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

impl FeatureBlock {
    /// The texts this block needs embedded (none for lexical features).
    pub fn texts(self) -> &'static [Text] {
        match self {
            FeatureBlock::Completion | FeatureBlock::CompletionMax => &[Text::Completion],
            FeatureBlock::LastUser => &[Text::LastUser],
            FeatureBlock::UserCosine => &[Text::Completion, Text::LastUser],
            FeatureBlock::CompletionOpening => &[Text::Opening],
            FeatureBlock::Pair => &[Text::Pair],
            FeatureBlock::StaticMean
            | FeatureBlock::StaticMax
            | FeatureBlock::Lexical
            | FeatureBlock::OpeningLexical => &[],
        }
    }

    /// Width of the block given the embedding width.
    pub fn width(self, embedding_dim: usize) -> usize {
        match self {
            FeatureBlock::Lexical => LEXICAL_CUES.len() + 2,
            FeatureBlock::OpeningLexical => OPENING_CUES.len(),
            FeatureBlock::UserCosine => 1,
            _ => embedding_dim,
        }
    }
}

/// The reply split into sentences (on `.`, `!`, `?` and newlines; empty pieces dropped), at
/// most `max` of them; the last one takes the rest of the text.
pub fn sentences(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() && out.len() + 1 < max.max(1) {
        let end = rest
            .char_indices()
            .find(|&(i, c)| matches!(c, '.' | '!' | '?' | '\n') && i > 0)
            .map(|(i, c)| i + c.len_utf8())
            .unwrap_or(rest.len());
        let piece = rest[..end].trim();
        if !piece.is_empty() {
            out.push(piece);
        }
        rest = rest[end..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The first sentence (up to 200 bytes, cut on a character boundary).
fn opening(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .char_indices()
        .find(|&(i, c)| matches!(c, '.' | '!' | '?' | '\n') && i > 0)
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(text.len());
    let mut cut = end.min(200);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Lower-case substrings whose presence in the reply is a cheap cue for some proposition.
/// One feature each (0/1), in this order.
pub const LEXICAL_CUES: [&[&str]; 20] = [
    &["sorry", "apologi"],
    &[
        "i can't",
        "i cannot",
        "i can not",
        "i won't",
        "i'm unable",
        "i am unable",
        "not able to",
        "i'm not able",
    ],
    &["?"],
    &["http", "www.", ".org", ".com"],
    &[" we ", "we're", " our ", "we are"],
    &[
        "policy",
        "policies",
        "guideline",
        "terms of",
        "community standards",
    ],
    &[
        "professional",
        "therapist",
        "counselor",
        "counsellor",
        "doctor",
        "psychiatrist",
        "hotline",
        "helpline",
    ],
    &["must ", "immediately", "urgent", "right away", "right now"],
    &[
        "as an ai",
        "language model",
        "i'm an ai",
        "i am an ai",
        "assistant, i",
    ],
    &[" mg", "milligram", "dose", "dosage", "tablets"],
    &[
        "not a doctor",
        "not a medical",
        "not qualified",
        "not a therapist",
        "not a licensed",
        "not a professional",
    ],
    &[
        "i understand",
        "sounds like",
        "hear that",
        "you're going through",
        "you are going through",
        "feeling",
    ],
    &[
        "reach out",
        "talk to",
        "someone you trust",
        "loved one",
        "friend or family",
    ],
    &[
        "inappropriate",
        "unethical",
        "offensive",
        "shame",
        "disgusting",
        "wrong to",
    ],
    &["report", "banned", "authorities", "consequences", "police"],
    &["stupid", "idiot", "pathetic", "moron"],
    &["sleep", "exercise", "breath", "meditat", "journal"],
    &[
        "however",
        "instead",
        "but i can",
        "alternatively",
        "here are",
    ],
    &["illegal", "law", "legal"],
    &["1.", "- ", "step"],
];

/// Lower-case openings of refusals and of compliance, looked for in the reply's first 200
/// bytes only. One feature each (0/1), in this order.
pub const OPENING_CUES: [&[&str]; 8] = [
    &["i'm sorry", "i am sorry", "sorry,", "sorry but"],
    &["i apologize", "i apologise", "my apologies"],
    &[
        "as an ai",
        "as a language model",
        "i'm just an ai",
        "i am just an ai",
        "as an artificial",
    ],
    &[
        "i cannot",
        "i can't",
        "i can not",
        "i won't",
        "i will not",
        "i'm not able",
        "i am not able",
        "i'm unable",
        "i am unable",
        "i must decline",
        "i'm not going to",
        "i am not going to",
    ],
    &[
        "i don't have access",
        "i do not have access",
        "i don't have personal",
        "i do not have personal",
        "i don't have the ability",
        "i do not have the ability",
    ],
    &[
        "not appropriate",
        "inappropriate",
        "not ethical",
        "unethical",
        "illegal",
        "harmful",
    ],
    &[
        "sure",
        "certainly",
        "of course",
        "absolutely",
        "here is",
        "here are",
        "here's",
    ],
    &["step 1", "1.", "first,", "firstly"],
];

/// [`OPENING_CUES`] in the first 200 bytes of the reply (cut on a character boundary).
pub fn opening_features(completion: &str) -> Vec<f64> {
    let text = completion.trim_start();
    let mut cut = text.len().min(200);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = text[..cut].to_lowercase();
    OPENING_CUES
        .iter()
        .map(|cues| f64::from(cues.iter().any(|c| head.contains(c))))
        .collect()
}

/// Lexical features of a reply: one 0/1 per cue group, then a digit-run cue (phone numbers,
/// doses) and log-length.
pub fn lexical_features(completion: &str) -> Vec<f64> {
    let lower = completion.to_lowercase();
    let mut out: Vec<f64> = LEXICAL_CUES
        .iter()
        .map(|cues| f64::from(cues.iter().any(|c| lower.contains(c))))
        .collect();
    let mut run = 0;
    let mut longest = 0;
    for c in lower.chars() {
        if c.is_ascii_digit() {
            run += 1;
            longest = longest.max(run);
        } else if !matches!(c, '-' | ' ' | '(' | ')') {
            run = 0;
        }
    }
    out.push(f64::from(longest >= 3));
    let words = completion.split_whitespace().count() as f64;
    out.push((1.0 + words).ln() / 6.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn opening_is_the_first_sentence() {
        assert_eq!(opening("  Sorry, I can't. Here is why."), "Sorry, I can't.");
        assert_eq!(opening("no punctuation"), "no punctuation");
        assert_eq!(opening(""), "");
        let long = "é".repeat(300);
        assert!(opening(&long).len() <= 200);
    }

    #[test]
    fn sentences_split_on_punctuation_and_lines() {
        assert_eq!(
            sentences("Sorry. I can't!  Why?\nBecause", 10),
            vec!["Sorry.", "I can't!", "Why?", "Because"]
        );
        assert_eq!(sentences("a. b. c. d", 2), vec!["a.", "b. c. d"]);
        assert!(sentences("  ", 4).is_empty());
    }

    #[test]
    fn lexical_cues_fire_on_their_words() {
        let f =
            lexical_features("I'm sorry, but I can't help. Call 1-800-273-8255 or visit www.x.org");
        assert_eq!(f.len(), FeatureBlock::Lexical.width(384));
        assert_eq!((f[0], f[1], f[3]), (1.0, 1.0, 1.0));
        assert_eq!(f[LEXICAL_CUES.len()], 1.0, "digit run");
        let g = lexical_features("");
        assert!(g.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn last_user_turn_is_found() {
        let s = Sample::from_value(
            json!({"prompt": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                              {"role": "user", "content": "c"}], "completion": "d"}),
            0,
        )
        .unwrap();
        assert_eq!(Text::LastUser.of(&s), "c");
        assert_eq!(Text::Completion.of(&s), "d");
        assert!(FeatureBlock::Lexical.texts().is_empty());
        assert_eq!(
            FeatureBlock::UserCosine.texts(),
            &[Text::Completion, Text::LastUser]
        );
    }
}
