"""The API's JSON parser."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a 400 (not a 500) for a document nested too deep for Python's
    parser: ``[[[[...]]]]`` a hundred thousand levels deep is a malformed request like any
    other, and answers in the common error format."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
