//! The grading prompt: conversation first, the graded reply next, the question last.
//!
//! Everything before the question is identical for all propositions of a sample, so a server
//! with prefix caching (llama-server, vLLM) prefills it once and only the short question suffix
//! is new for each further proposition.

use arbiter_core::{PropositionSpec, Sample};
use serde_json::{Value, json};

/// Fixed instructions, sent as the system message.
pub const SYSTEM_INSTRUCTIONS: &str = "You grade one assistant reply in a conversation. \
You will see the conversation, then the reply to grade, then one yes/no question about that reply. \
Answer the question about the reply only, with a single word: Yes or No.";

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

/// The chat messages for one (sample, proposition) pair.
pub fn grading_messages(sample: &Sample, proposition: &PropositionSpec) -> Value {
    let user = format!(
        "{}Question: {}\nAnswer Yes or No.",
        conversation_block(sample),
        proposition.question.trim()
    );
    json!([
        {"role": "system", "content": SYSTEM_INSTRUCTIONS},
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

    #[test]
    fn question_comes_last_after_conversation_and_reply() {
        let m = grading_messages(&sample(), &spec("apology", "Does the reply apologise?"));
        let user = m[1]["content"].as_str().unwrap();
        let conv = user.find("[USER]: Help me").unwrap();
        let reply = user.find("Sorry, I can't.").unwrap();
        let question = user.find("Does the reply apologise?").unwrap();
        assert!(conv < reply && reply < question);
        assert!(user.ends_with("Answer Yes or No."));
    }

    #[test]
    fn propositions_of_one_sample_share_everything_but_the_question() {
        let a = grading_messages(&sample(), &spec("a", "Question A?"));
        let b = grading_messages(&sample(), &spec("b", "Question B?"));
        assert_eq!(a[0], b[0]);
        let (ua, ub) = (
            a[1]["content"].as_str().unwrap(),
            b[1]["content"].as_str().unwrap(),
        );
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
}
