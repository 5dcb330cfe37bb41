"""toolkit.BatchedOutput and Stopper.wait_readable: what snoop's per-batch output relies on."""
import io
import os

from tinytrace import toolkit


class _Counting(io.StringIO):
    def __init__(self):
        io.StringIO.__init__(self)
        self.writes = 0
        self.flushes = 0

    def write(self, text):
        self.writes += 1
        return io.StringIO.write(self, text)

    def flush(self):
        self.flushes += 1


def test_lines_of_a_batch_are_written_once_at_commit():
    under = _Counting()
    out = toolkit.BatchedOutput(under)
    for i in range(5):
        out.write("line %d\n" % i)
        out.flush()                     # a printer's per-line flush: deferred
    assert under.getvalue() == "" and under.writes == 0
    out.commit()
    assert under.getvalue() == "".join("line %d\n" % i for i in range(5))
    assert (under.writes, under.flushes) == (1, 1)
    out.commit()                        # nothing new: no write, still a flush
    assert (under.writes, under.flushes) == (1, 2)
    out.write("x")
    out.commit()
    assert under.getvalue().endswith("line 4\nx")


def test_other_attributes_are_the_streams():
    under = io.StringIO()
    out = toolkit.BatchedOutput(under)
    assert out.getvalue is not None and out.closed is False


def test_wait_readable_reuses_its_poll_per_fd():
    r, w = os.pipe()
    r2, w2 = os.pipe()
    try:
        s = toolkit.Stopper()
        os.write(w, b"x")
        assert s.wait_readable(r, 0.01)
        first = s._poll
        assert s.wait_readable(r, 0.01) and s._poll is first
        assert s.wait_readable(r2, 0.01) and s._poll is not first and s._poll[0] == r2
    finally:
        for fd in (r, w, r2, w2):
            os.close(fd)
