//! From a chat response to P(yes): token normalisation, tolerant parsing of the logprob shapes
//! servers return, and the yes/no read with its flags (rbr.md §7).

use arbiter_core::GradeFlag;
use serde_json::Value;

use crate::grader::PropositionGrade;

/// A yes/no label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Yes.
    Yes,
    /// No.
    No,
}

/// Map a token to a label: trim whitespace and the BPE space markers `Ġ`/`▁`, lower-case, drop
/// punctuation. `" Yes"`, `"YES."`, `"▁no"` all count; `"Yesterday"` does not.
pub fn normalise_token(token: &str) -> Option<Label> {
    let cleaned: String = token
        .chars()
        .filter(|c| !c.is_whitespace() && *c != 'Ġ' && *c != '▁' && !c.is_ascii_punctuation())
        .flat_map(char::to_lowercase)
        .collect();
    match cleaned.as_str() {
        "yes" => Some(Label::Yes),
        "no" => Some(Label::No),
        _ => None,
    }
}

/// One generated position: the sampled token and the alternatives the server returned.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPosition {
    /// The generated token's text.
    pub token: String,
    /// Its log-probability, if reported.
    pub logprob: Option<f64>,
    /// Top alternatives as (token, logprob); may be empty.
    pub top: Vec<(String, f64)>,
}

/// What a response carried: the generated text and per-position logprobs (if any).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedResponse {
    /// The generated text, if any.
    pub text: Option<String>,
    /// Generated positions with logprobs; `None` when the server sent no logprobs at all.
    pub positions: Option<Vec<TokenPosition>>,
}

/// Read text and logprobs from any of the shapes OpenAI-compatible servers send:
/// - OpenAI chat: `choices[0].logprobs.content[{token, logprob, top_logprobs[{token, logprob}]}]`;
/// - legacy completions: `choices[0].logprobs{tokens, token_logprobs, top_logprobs[{tok: lp}]}`;
/// - old llama.cpp: `completion_probabilities[{content, probs[{tok_str, prob}]}]` (linear probs),
///   at top level or inside `choices[0]`.
///
/// Unknown fields are ignored and missing ones tolerated; nothing here panics.
pub fn parse_response(body: &Value) -> ParsedResponse {
    let choice = body.get("choices").and_then(|c| c.get(0));
    let text = arbiter_openai::response_text(body).map(str::to_string);

    let positions = choice
        .and_then(|c| c.get("logprobs"))
        .and_then(parse_logprobs_object)
        .or_else(|| {
            choice
                .and_then(|c| c.get("completion_probabilities"))
                .or_else(|| body.get("completion_probabilities"))
                .and_then(parse_completion_probabilities)
        });
    ParsedResponse { text, positions }
}

fn parse_logprobs_object(lp: &Value) -> Option<Vec<TokenPosition>> {
    if let Some(content) = lp.get("content").and_then(Value::as_array) {
        return Some(content.iter().filter_map(parse_chat_position).collect());
    }
    // Legacy completions shape.
    let tokens = lp.get("tokens").and_then(Value::as_array)?;
    let token_lps = lp.get("token_logprobs").and_then(Value::as_array);
    let tops = lp.get("top_logprobs").and_then(Value::as_array);
    let positions = tokens
        .iter()
        .enumerate()
        .map(|(i, tok)| TokenPosition {
            token: tok.as_str().unwrap_or_default().to_string(),
            logprob: token_lps.and_then(|l| l.get(i)).and_then(Value::as_f64),
            top: tops
                .and_then(|t| t.get(i))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    Some(positions)
}

fn parse_chat_position(v: &Value) -> Option<TokenPosition> {
    let token = v.get("token").and_then(Value::as_str)?.to_string();
    let logprob = v.get("logprob").and_then(Value::as_f64);
    let top = v
        .get("top_logprobs")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter_map(|a| {
                    Some((
                        a.get("token")?.as_str()?.to_string(),
                        a.get("logprob")?.as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(TokenPosition {
        token,
        logprob,
        top,
    })
}

fn parse_completion_probabilities(v: &Value) -> Option<Vec<TokenPosition>> {
    let entries = v.as_array()?;
    Some(
        entries
            .iter()
            .filter_map(|e| {
                let token = e
                    .get("content")
                    .or_else(|| e.get("token"))
                    .and_then(Value::as_str)?
                    .to_string();
                let top = e
                    .get("probs")
                    .and_then(Value::as_array)
                    .map(|alts| {
                        alts.iter()
                            .filter_map(|a| {
                                let tok = a.get("tok_str").and_then(Value::as_str)?;
                                let p = a.get("prob").and_then(Value::as_f64)?;
                                (p > 0.0).then(|| (tok.to_string(), p.ln()))
                            })
                            .collect()
                    })
                    .or_else(|| {
                        e.get("top_logprobs").and_then(Value::as_array).map(|alts| {
                            alts.iter()
                                .filter_map(|a| {
                                    Some((
                                        a.get("token")?.as_str()?.to_string(),
                                        a.get("logprob")?.as_f64()?,
                                    ))
                                })
                                .collect()
                        })
                    })
                    .unwrap_or_default();
                let logprob = e.get("logprob").and_then(Value::as_f64);
                Some(TokenPosition {
                    token,
                    logprob,
                    top,
                })
            })
            .collect(),
    )
}

/// Label mass at one position: (p_yes, p_no) summed over every alternative that normalises to
/// the label. When the server sent no alternatives the sampled token stands alone.
fn label_mass(position: &TokenPosition) -> (f64, f64) {
    let mut owned = Vec::new();
    let alternatives: &[(String, f64)] = if position.top.is_empty() {
        if let Some(lp) = position.logprob {
            owned.push((position.token.clone(), lp));
        }
        &owned
    } else {
        &position.top
    };
    let (mut yes, mut no) = (0.0, 0.0);
    for (token, lp) in alternatives {
        match normalise_token(token) {
            Some(Label::Yes) => yes += lp.exp(),
            Some(Label::No) => no += lp.exp(),
            None => {}
        }
    }
    (yes, no)
}

/// Find `yes`/`no` as a whole word in free text (the fallback when logprobs are unusable).
pub fn parse_text_label(text: &str) -> Option<Label> {
    text.split(|c: char| !c.is_alphanumeric())
        .find_map(|word| match word.to_lowercase().as_str() {
            "yes" => Some(Label::Yes),
            "no" => Some(Label::No),
            _ => None,
        })
}

/// Turn a parsed response into a grade (rbr.md §7):
/// 1. the first position (of at most `scan_positions`) whose alternatives include a label gives
///    P(yes) = p_yes / (p_yes + p_no) with mass = p_yes + p_no; mass below `min_mass` keeps the
///    ratio but flags `low_mass`;
/// 2. with no logprobs, or no label among them, the text is parsed (yes → 1, no → 0) and flagged
///    `parsed_text_fallback`;
/// 3. failing that, there is no probability and the flag is `no_label_token`.
pub fn grade_from_response(
    parsed: &ParsedResponse,
    min_mass: f64,
    scan_positions: usize,
) -> PropositionGrade {
    if let Some(positions) = &parsed.positions {
        for position in positions.iter().take(scan_positions.max(1)) {
            let (yes, no) = label_mass(position);
            let mass = yes + no;
            if mass > 0.0 && mass.is_finite() {
                let p = (yes / mass).clamp(0.0, 1.0);
                return PropositionGrade {
                    p_yes: Some(p),
                    mass: Some(mass),
                    flag: (mass < min_mass).then_some(GradeFlag::LowMass),
                };
            }
        }
    }
    match parsed.text.as_deref().and_then(parse_text_label) {
        Some(label) => PropositionGrade {
            p_yes: Some(if label == Label::Yes { 1.0 } else { 0.0 }),
            mass: None,
            flag: Some(GradeFlag::ParsedTextFallback),
        },
        None => PropositionGrade {
            p_yes: None,
            mass: None,
            flag: Some(GradeFlag::NoLabelToken),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalises_label_variants_and_rejects_lookalikes() {
        for t in ["Yes", " yes", "YES.", "Ġyes", "▁Yes", "yes!", "\nYes"] {
            assert_eq!(normalise_token(t), Some(Label::Yes), "{t:?}");
        }
        for t in ["No", " no", "NO,", "▁no"] {
            assert_eq!(normalise_token(t), Some(Label::No), "{t:?}");
        }
        for t in ["Yesterday", "nope", "", " ", "n", "know"] {
            assert_eq!(normalise_token(t), None, "{t:?}");
        }
    }

    fn chat(tops: Value) -> Value {
        json!({"choices": [{"message": {"role": "assistant", "content": "Yes"},
            "logprobs": {"content": [{"token": "Yes", "logprob": -0.1, "bytes": [89], "top_logprobs": tops}]}}]})
    }

    #[test]
    fn p_yes_sums_variants_and_normalises_by_label_mass() {
        let body = chat(json!([
            {"token": "Yes", "logprob": (0.5f64).ln()},
            {"token": " yes", "logprob": (0.1f64).ln()},
            {"token": "No", "logprob": (0.2f64).ln()},
            {"token": "Maybe", "logprob": (0.2f64).ln()},
        ]));
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert!((g.p_yes.unwrap() - 0.75).abs() < 1e-9);
        assert!((g.mass.unwrap() - 0.8).abs() < 1e-9);
        assert_eq!(g.flag, None);
    }

    #[test]
    fn low_mass_keeps_ratio_and_flags() {
        let body = chat(json!([
            {"token": "The", "logprob": (0.8f64).ln()},
            {"token": "no", "logprob": (0.1f64).ln()},
            {"token": "yes", "logprob": (0.1f64).ln()},
        ]));
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert!((g.p_yes.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(g.flag, Some(GradeFlag::LowMass));
    }

    #[test]
    fn skips_leading_positions_without_labels() {
        let body = json!({"choices": [{"message": {"content": "\nNo"}, "logprobs": {"content": [
            {"token": "\n", "logprob": -0.01, "top_logprobs": [{"token": "\n", "logprob": -0.01}]},
            {"token": "No", "logprob": -0.2, "top_logprobs": [{"token": "No", "logprob": (0.9f64).ln()}, {"token": "Yes", "logprob": (0.1f64).ln()}]}
        ]}}]});
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert!((g.p_yes.unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(
            grade_from_response(&parse_response(&body), 0.5, 1).flag,
            Some(GradeFlag::ParsedTextFallback)
        );
    }

    #[test]
    fn legacy_completions_shape() {
        let body = json!({"choices": [{"text": " yes", "logprobs": {
            "tokens": [" yes"], "token_logprobs": [-0.3],
            "top_logprobs": [{" yes": (0.6f64).ln(), " no": (0.2f64).ln()}], "text_offset": [0]}}]});
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert!((g.p_yes.unwrap() - 0.75).abs() < 1e-9);
    }

    #[test]
    fn old_llama_cpp_shape_with_linear_probs() {
        let body = json!({"content": "No", "completion_probabilities": [
            {"content": "No", "probs": [{"tok_str": "No", "prob": 0.6}, {"tok_str": "Yes", "prob": 0.2}, {"tok_str": "x", "prob": 0.0}]}]});
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert!((g.p_yes.unwrap() - 0.25).abs() < 1e-9);
        assert!((g.mass.unwrap() - 0.8).abs() < 1e-9);
    }

    #[test]
    fn missing_logprobs_fall_back_to_text_with_a_flag() {
        let body = json!({"choices": [{"message": {"content": "No."}}]});
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert_eq!(g.p_yes, Some(0.0));
        assert_eq!(g.flag, Some(GradeFlag::ParsedTextFallback));

        let body = json!({"choices": [{"message": {"content": "I cannot say"}, "logprobs": null}]});
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert_eq!(g.p_yes, None);
        assert_eq!(g.flag, Some(GradeFlag::NoLabelToken));

        // Garbage never panics and never invents a probability.
        for body in [
            json!(null),
            json!([]),
            json!({"choices": "x"}),
            json!({"choices": [{"logprobs": {"content": [{"logprob": 1}]}}]}),
        ] {
            assert_eq!(
                grade_from_response(&parse_response(&body), 0.5, 3).p_yes,
                None
            );
        }
    }

    #[test]
    fn sampled_token_alone_counts_when_no_alternatives() {
        let body = json!({"choices": [{"message": {"content": "yes"}, "logprobs": {"content": [{"token": "yes", "logprob": -0.5, "top_logprobs": []}]}}]});
        let g = grade_from_response(&parse_response(&body), 0.5, 3);
        assert_eq!(g.p_yes, Some(1.0));
        assert!((g.mass.unwrap() - (-0.5f64).exp()).abs() < 1e-12);
    }
}
