//! The misuses the types rule out: each file of `tests/misuse/` must fail to
//! compile, with the error its `.stderr` records.

#[test]
fn misuses_do_not_compile() {
    trybuild::TestCases::new().compile_fail("tests/misuse/*.rs");
}
