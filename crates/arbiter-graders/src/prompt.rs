//! The grading prompts. Two layouts, both built so that a server with prefix caching
//! (llama-server, vLLM, OpenAI's prompt caching) evaluates as little as possible anew:
//!
//! - [`PromptLayout::Glossary`] (default): the system message lists every proposition of the
//!   grader's glossary by name with its question, identical for every sample of a run; the user
//!   message is the conversation, the reply, and the proposition's name last. The glossary is
//!   evaluated once per run, and each proposition after a sample's first costs only its name
//!   and the answer cue and the chat template's turn markers (≈ 20 tokens instead of ≈ 39).
//! - [`PromptLayout::Question`]: short fixed instructions, the conversation, the reply, and the
//!   proposition's full question last; the prefix is shared by one sample's propositions only.

use std::str::FromStr;

use arbiter_core::{PropositionSpec, Sample};
use serde_json::{Value, json};

/// Where each proposition's question goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptLayout {
    /// Questions in the system message, the proposition's name last.
    #[default]
    Glossary,
    /// The proposition's full question last.
    Question,
}

impl PromptLayout {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptLayout::Glossary => "glossary",
            PromptLayout::Question => "question",
        }
    }
}

impl FromStr for PromptLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "glossary" => Ok(PromptLayout::Glossary),
            "question" => Ok(PromptLayout::Question),
            other => Err(format!(
                "unknown prompt layout {other:?}: expected glossary or question"
            )),
        }
    }
}

/// Fixed instructions of the question layout, sent as the system message.
pub const SYSTEM_INSTRUCTIONS: &str = "You grade one assistant reply in a conversation. \
You will see the conversation, then the reply to grade, then one yes/no question about that reply. \
Answer the question about the reply only, with a single word: Yes or No.";

/// The system message of the glossary layout: instructions and every proposition's question.
pub fn glossary_instructions(glossary: &[PropositionSpec]) -> String {
    let mut out = String::from(
        "You grade one assistant reply in a conversation against yes/no propositions. \
Each proposition has a name and a question about the reply:\n\n",
    );
    for p in glossary {
        out.push_str(&format!("{}: {}\n", p.name, p.question.trim()));
    }
    out.push_str(
        "\nYou will see the conversation, then the reply to grade, then the name of one \
proposition. Answer that proposition's question about the reply only, with a single word: \
Yes or No.",
    );
    out
}

/// The shared prefix of the user message: the conversation and the reply to grade.
pub fn conversation_block(sample: &Sample) -> String {
    let mut out = String::from("<conversation>\n");
    for message in &sample.prompt {
        out.push_str(&format!(
            "[{}]: {}\n",
            message.role.as_str().to_ascii_uppercase(),
            message.content
        ));
    }
    out.push_str("</conversation>\n\n<reply_to_grade>\n[ASSISTANT]: ");
    out.push_str(sample.completion_text());
    out.push_str("\n</reply_to_grade>\n\n");
    out
}

/// The chat messages for one (sample, proposition) pair. `glossary` is the list the glossary
/// layout's system message shows (it should hold `proposition`); the question layout ignores it.
pub fn grading_messages(
    layout: PromptLayout,
    sample: &Sample,
    proposition: &PropositionSpec,
    glossary: &[PropositionSpec],
) -> Value {
    let (system, user) = match layout {
        PromptLayout::Glossary => (
            glossary_instructions(glossary),
            format!(
                "{}Proposition: {}\nAnswer Yes or No.",
                conversation_block(sample),
                proposition.name
            ),
        ),
        PromptLayout::Question => (
            SYSTEM_INSTRUCTIONS.to_string(),
            format!(
                "{}Question: {}\nAnswer Yes or No.",
                conversation_block(sample),
                proposition.question.trim()
            ),
        ),
    };
    json!([
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Sample {
        Sample::from_value(
            json!({"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                              {"role": "user", "content": "Help me"}],
                   "completion": "Sorry, I can't."}),
            0,
        )
        .unwrap()
    }

    fn spec(name: &str, q: &str) -> PropositionSpec {
        PropositionSpec {
            name: name.into(),
            question: q.into(),
        }
    }

    fn specs() -> Vec<PropositionSpec> {
        vec![
            spec("apology", "Does the reply apologise?"),
            spec("refusal", "Does the reply refuse?"),
        ]
    }

    fn user_text(m: &Value) -> &str {
        m[1]["content"].as_str().unwrap()
    }

    #[test]
    fn question_layout_puts_the_question_last_after_conversation_and_reply() {
        let g = specs();
        let m = grading_messages(PromptLayout::Question, &sample(), &g[0], &g);
        let user = user_text(&m);
        let conv = user.find("[USER]: Help me").unwrap();
        let reply = user.find("Sorry, I can't.").unwrap();
        let question = user.find("Does the reply apologise?").unwrap();
        assert!(conv < reply && reply < question);
        assert!(user.ends_with("Answer Yes or No."));
        assert_eq!(m[0]["content"], SYSTEM_INSTRUCTIONS);
    }

    #[test]
    fn question_layout_shares_everything_but_the_question() {
        let (a, b) = (spec("a", "Question A?"), spec("b", "Question B?"));
        let g = [a.clone(), b.clone()];
        let ma = grading_messages(PromptLayout::Question, &sample(), &a, &g);
        let mb = grading_messages(PromptLayout::Question, &sample(), &b, &g);
        assert_eq!(ma[0], mb[0]);
        let (ua, ub) = (user_text(&ma), user_text(&mb));
        let shared = ua
            .bytes()
            .zip(ub.bytes())
            .take_while(|(x, y)| x == y)
            .count();
        assert_eq!(
            &ua[..shared],
            format!("{}Question: Question ", conversation_block(&sample()))
        );
    }

    #[test]
    fn glossary_layout_lists_every_question_and_ends_with_the_name() {
        let g = specs();
        let m = grading_messages(PromptLayout::Glossary, &sample(), &g[1], &g);
        let system = m[0]["content"].as_str().unwrap();
        assert!(system.contains("apology: Does the reply apologise?\n"));
        assert!(system.contains("refusal: Does the reply refuse?\n"));
        let user = user_text(&m);
        assert!(user.starts_with(&conversation_block(&sample())));
        assert!(user.ends_with("Proposition: refusal\nAnswer Yes or No."));
        assert!(!user.contains("Does the reply refuse?"));
    }

    #[test]
    fn glossary_layout_differs_between_propositions_only_in_the_name() {
        let g = specs();
        let a = grading_messages(PromptLayout::Glossary, &sample(), &g[0], &g);
        let b = grading_messages(PromptLayout::Glossary, &sample(), &g[1], &g);
        assert_eq!(a[0], b[0]);
        let other = Sample::from_value(
            json!({"prompt": [{"role": "user", "content": "Other"}], "completion": "Fine."}),
            1,
        )
        .unwrap();
        let c = grading_messages(PromptLayout::Glossary, &other, &g[0], &g);
        assert_eq!(
            a[0], c[0],
            "the system message is the same for every sample"
        );
        assert_eq!(
            user_text(&a).strip_suffix("apology\nAnswer Yes or No."),
            user_text(&b).strip_suffix("refusal\nAnswer Yes or No.")
        );
    }

    #[test]
    fn layout_names_round_trip_and_unknown_names_are_refused() {
        for layout in [PromptLayout::Glossary, PromptLayout::Question] {
            assert_eq!(layout.as_str().parse::<PromptLayout>(), Ok(layout));
        }
        let err = "questions".parse::<PromptLayout>().unwrap_err();
        assert!(err.contains("glossary or question"), "{err}");
    }
}
