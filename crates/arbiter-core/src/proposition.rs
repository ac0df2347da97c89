//! The yes/no question a grader answers about a completion.

use serde::{Deserialize, Serialize};

/// A named yes/no question about the last assistant turn of a conversation.
///
/// Policies own the list; graders only need the name (to key their answers and learned heads)
/// and the question (to ask a model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropositionSpec {
    /// Identifier used in labels, grades and rules (`apology`).
    pub name: String,
    /// The question in plain words, answerable with yes or no.
    pub question: String,
}
