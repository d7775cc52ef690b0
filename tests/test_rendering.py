from django.template import Context, Template
from django.utils.safestring import SafeString

from dashboard.templatetags.rendering import render_markdown


def test_markdown_becomes_html():
    html = render_markdown("# Title\n\nSome **bold** and *em* and `code`.\n\n- one\n- two")
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html
    assert "<code>code</code>" in html
    assert "<ul>\n<li>one</li>" in html


def test_fenced_code_and_tables_render():
    html = render_markdown("```python\nx = 1 < 2\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<pre><code>x = 1 &lt; 2\n</code></pre>" in html
    assert "<table>" in html and "<th>a</th>" in html and "<td>2</td>" in html


def test_a_script_tag_is_shown_as_text_not_run():
    html = render_markdown("Hello <script>alert(1)</script>")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_image_with_an_event_handler_is_inert():
    html = render_markdown("<img src=x onerror=alert(1)>\n\nand ![pixel](https://e.com/p.png)")
    assert "<img" not in html


def test_event_handler_and_style_attributes_never_reach_the_page():
    html = render_markdown('<p onclick="alert(1)" style="color:red">hi</p>')
    assert "<p onclick" not in html and "<p style" not in html


def test_a_javascript_link_loses_its_href():
    html = render_markdown(
        "[x](javascript:alert(1)) [y](JaVaScRiPt:alert(1)) [z](data:text/html,x)"
    )
    assert "javascript" not in html.lower()
    assert "data:" not in html
    assert "href" not in html


def test_safe_links_keep_their_target_and_get_a_safe_rel():
    html = render_markdown('[docs](https://example.com "Docs") [mail](mailto:a@example.com)')
    assert (
        '<a href="https://example.com" title="Docs" rel="noopener noreferrer nofollow">docs</a>'
        in html
    )
    assert 'href="mailto:a@example.com"' in html


def test_empty_text_renders_nothing():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""


def test_the_filter_returns_markup_the_template_does_not_escape_again():
    template = Template("{% load rendering %}{{ text|markdown }}")
    html = template.render(Context({"text": "**hi** <script>x</script>"}))
    assert "<strong>hi</strong>" in html
    assert "<script" not in html
    assert isinstance(render_markdown("x"), SafeString)
