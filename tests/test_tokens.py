from agents import tokens


def test_it_estimates_about_four_characters_per_token():
    assert tokens.estimate_tokens("") == 0
    assert tokens.estimate_tokens("abcd") == 1
    assert tokens.estimate_tokens("a" * 400) == 100


def test_the_text_of_messages_reads_strings_and_content_parts():
    parts = [{"type": "text", "text": "b"}, {"type": "image_url"}, "not a part"]
    messages = [{"content": "a"}, {"content": parts}, {"content": None}, {}]
    assert tokens.messages_text(messages) == "a\nb\n\n\n"
