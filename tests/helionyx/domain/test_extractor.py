import pytest

from helionyx.domain.extractor import RuleBasedExtractor


@pytest.mark.parametrize(
    ("text", "todos", "notes"),
    [
        ("todo: buy milk", ("buy milk",), ()),
        ("TODO - call mum.", ("call mum",), ()),
        ("- [ ] water plants", ("water plants",), ()),
        ("remind me to renew the passport", ("renew the passport",), ()),
        ("note: the wifi password is on the fridge", (), ("the wifi password is on the fridge",)),
        ("just chatting", (), ()),
        ("todo: a\nnote: b\ntodo: c", ("a", "c"), ("b",)),
        ("todo:   ", (), ()),
    ],
)
def test_rules_find_todos_and_notes_line_by_line(
    text: str, todos: tuple[str, ...], notes: tuple[str, ...]
) -> None:
    found = RuleBasedExtractor().extract(text)
    assert (found.todos, found.notes) == (todos, notes)
