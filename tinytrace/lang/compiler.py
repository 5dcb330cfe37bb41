"""The compiler driver: text -> checked tree -> BPF programs, one pass after another.

``check(text, filename, env)`` parses and analyses (no kernel needed beyond tracefs);
``compile_program(...)`` also generates code.  Every ``LangError`` leaves here as a
``tinytrace.errors.SourceError`` pointing into the user's text.
"""
from tinytrace.lang.source import LangError, Source


def check(text, filename, env):
    """Parse and analyse ``text``; returns (source, program)."""
    from tinytrace.lang.parser import parse
    from tinytrace.lang.sema import analyse
    src = Source(text, filename)
    try:
        prog = parse(text, env.params)
        analyse(prog, env)
    except LangError as err:
        raise src.convert(err)
    return src, prog
