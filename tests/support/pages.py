"""A web page read back as a browser user sees it: its elements, their attributes, its
text (character references decoded) and its title."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """Fed a page (or a browser's dump of its DOM), keeps its tags in order, every
    attribute as (tag, name, value), the text pieces and the title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((tag, name, value) for name, value in attrs)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)

    def attribute(self, tag: str, name: str) -> str | None:
        """The value of ``name`` on the first ``tag`` element that has it."""
        return next((v for t, n, v in self.attributes if t == tag and n == name), None)

    def words(self) -> str:
        """The text with every run of white space as one space (as a reader reads it)."""
        return " ".join(" ".join(self.text).split())


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page
