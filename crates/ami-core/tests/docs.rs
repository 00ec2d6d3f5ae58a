//! The workflow documentation shows the diagram of the default definition as
//! the engine draws it, so that the two cannot drift apart.

use ami_core::{to_mermaid, Definition};

const FENCE_OPEN: &str = "```mermaid\n";
const FENCE_CLOSE: &str = "```";

/// The bodies of the ```mermaid blocks of a Markdown text.
fn mermaid_blocks(markdown: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find(FENCE_OPEN) {
        let body = &rest[start + FENCE_OPEN.len()..];
        let end = body
            .find(FENCE_CLOSE)
            .expect("a ```mermaid block is closed");
        blocks.push(&body[..end]);
        rest = &body[end + FENCE_CLOSE.len()..];
    }
    blocks
}

#[test]
fn the_workflow_doc_shows_exactly_the_diagram_of_the_default_definition() {
    // Arrange
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/workflow.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let expected = to_mermaid(&Definition::ami2());

    // Act
    let blocks = mermaid_blocks(&doc);

    // Assert
    assert_eq!(blocks.len(), 1, "docs/workflow.md has one ```mermaid block");
    assert_eq!(
        blocks[0], expected,
        "docs/workflow.md is out of date: paste the output of to_mermaid(&Definition::ami2())"
    );
}

#[test]
fn mermaid_blocks_are_found_between_their_fences() {
    // Arrange
    let markdown = "# T\n\n```mermaid\na --> b\n```\ntext\n```rust\nx\n```\n```mermaid\nc\n```\n";

    // Act
    let blocks = mermaid_blocks(markdown);

    // Assert
    assert_eq!(blocks, ["a --> b\n", "c\n"]);
}
