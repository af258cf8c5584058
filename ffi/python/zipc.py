"""zipc from Python: a small ctypes wrapper of the C API (include/zipc.h), standard library only.

    import zipc
    with zipc.Producer("orders", capacity=1 << 20) as tx:
        tx.send(b"hello")
    # the close waits (5 s by default: `linger`) for a consumer to take the frame
    # in another process, started before or after:
    with zipc.Consumer("orders", timeout=10) as rx:   # waits up to 10 s for the name
        for frame in rx:          # bytes, until the producer closes
            print(frame)

The library is found at $ZIPC_LIB, else in this repository's target/release or target/debug,
else wherever the dynamic loader finds libzipc.so. Timeouts are in seconds: None waits as long
as it takes, 0 does not wait.
"""

import ctypes
import ctypes.util
import os
import pathlib

__all__ = [
    "Producer", "Consumer", "worker_connect", "ZipcError", "Timeout", "WouldBlock", "PeerGone",
    "Disconnected", "TooLarge", "NotFound", "Undelivered", "result_name", "library_path",
]

# zipc_result, in the header's order.
(OK, TIMEOUT, WOULD_BLOCK, PEER_GONE, DISCONNECTED, TOO_LARGE, CORRUPTED, INVALID_ARGUMENT,
 EXISTS, NOT_FOUND, IO, PANIC, UNDELIVERED) = range(13)


def library_path():
    """Where libzipc.so is taken from."""
    if os.environ.get("ZIPC_LIB"):
        return os.environ["ZIPC_LIB"]
    root = pathlib.Path(__file__).resolve().parents[2]
    for profile in ("release", "debug"):
        candidate = root / "target" / profile / "libzipc.so"
        if candidate.exists():
            return str(candidate)
    found = ctypes.util.find_library("zipc")
    if found is None:
        raise OSError("libzipc.so not found: build it (cargo build --release -p zipc-ffi) "
                      "or set ZIPC_LIB")
    return found


_lib = ctypes.CDLL(library_path())
_result = ctypes.c_int
_p = ctypes.c_void_p
_size = ctypes.c_size_t
_i64 = ctypes.c_int64


def _declare(name, restype, *argtypes):
    fn = getattr(_lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_producer_create = _declare("zipc_producer_create", _result, ctypes.c_char_p, _size,
                            ctypes.POINTER(_p))
_consumer_open_timeout = _declare("zipc_consumer_open_timeout", _result, ctypes.c_char_p, _i64,
                                  ctypes.POINTER(_p))
_send = _declare("zipc_send", _result, _p, ctypes.c_char_p, _size, _i64)
_recv = _declare("zipc_recv", _result, _p, ctypes.POINTER(_p), ctypes.POINTER(_size), _i64)
_release = _declare("zipc_release", _result, _p)
_recv_copy = _declare("zipc_recv_copy", _result, _p, _p, _size, ctypes.POINTER(_size), _i64)
_producer_close_checked = _declare("zipc_producer_close_checked", _result, _p,
                                   ctypes.POINTER(ctypes.c_uint64))
_producer_is_connected = _declare("zipc_producer_is_connected", _result, _p,
                                  ctypes.POINTER(ctypes.c_bool))
_producer_wait_for_consumer = _declare("zipc_producer_wait_for_consumer", _result, _p, _i64)
_producer_set_linger = _declare("zipc_producer_set_linger", _result, _p, _i64)
_consumer_close = _declare("zipc_consumer_close", None, _p)
_producer_max = _declare("zipc_producer_max_frame_len", _size, _p)
_consumer_max = _declare("zipc_consumer_max_frame_len", _size, _p)
_worker_connect = _declare("zipc_worker_connect", _result, ctypes.POINTER(_p),
                           ctypes.POINTER(_p))
_last_error_message = _declare("zipc_last_error_message", ctypes.c_char_p)
_result_name = _declare("zipc_result_name", ctypes.c_char_p, ctypes.c_uint)


def result_name(result):
    """The name of a zipc_result, such as "ZIPC_PEER_GONE"."""
    return _result_name(result).decode()


class ZipcError(Exception):
    """A zipc call that failed: `result` (a zipc_result), its `name`, and the `message`."""

    def __init__(self, result, message):
        self.result = result
        self.name = result_name(result)
        self.message = message
        super().__init__(f"{self.name}: {message}")


class Timeout(ZipcError):
    """A call with a positive timeout ran out of time."""


class WouldBlock(ZipcError):
    """A call with a timeout of 0 found the ring full or empty."""


class PeerGone(ZipcError):
    """The peer process died; everything it sent was received first."""


class Disconnected(ZipcError):
    """The peer closed its end; everything it sent was received first."""


class TooLarge(ZipcError):
    """A frame too large for the channel, or for the buffer given."""


class NotFound(ZipcError):
    """No channel of that name (within the timeout, for an open that waits)."""


class Undelivered(ZipcError):
    """A producer's close waited its linger time and no consumer took some of the frames: how
    many is in `frames`."""

    def __init__(self, result, message, frames=0):
        super().__init__(result, message)
        self.frames = frames


_ERRORS = {TIMEOUT: Timeout, WOULD_BLOCK: WouldBlock, PEER_GONE: PeerGone,
           DISCONNECTED: Disconnected, TOO_LARGE: TooLarge, NOT_FOUND: NotFound,
           UNDELIVERED: Undelivered}


def _error(result):
    message = _last_error_message().decode(errors="replace")
    return _ERRORS.get(result, ZipcError)(result, message)


def _check(result):
    if result != OK:
        raise _error(result)


def _ns(timeout):
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    return max(1, int(timeout * 1e9))


class _End:
    """What both ends share: a handle, closed once (by `close`, `with`, or collection)."""

    _what = "end"

    def _close_handle(self, handle):
        raise NotImplementedError

    def close(self):
        """Closes this end: the peer gets what was sent, then Disconnected."""
        if self._handle:
            self._close_handle(self._handle)
            self._handle = None

    def _live(self):
        if not self._handle:
            raise ValueError(f"the {self._what} is closed")
        return self._handle

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        # An exception is on its way out already: it says more than one from the close would.
        try:
            self.close()
        except ZipcError:
            pass

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit the module may be half gone
            pass


_UNSET = object()


class Producer(_End):
    """The sending end of the named channel `name`, which it creates (see zipc_producer_create).

    Closing it (`close`, the end of a `with` block, or collection) waits, while the channel
    holds frames no consumer took, up to `linger` seconds (5 by default; None: as long as it
    takes; 0: not at all) for a consumer to attach; then the name is removed. So a consumer that
    starts after the producer is done still receives every frame. `close` raises Undelivered
    when the linger time ran out with frames no consumer took."""

    def __init__(self, name, capacity=256 * 1024, linger=_UNSET, _handle=None):
        if _handle is None:
            _handle = _p()
            _check(_producer_create(name.encode(), capacity, ctypes.byref(_handle)))
        self._handle = _handle
        if linger is not _UNSET:
            self.set_linger(linger)

    def set_linger(self, seconds):
        """How long closing waits for a consumer while frames are undelivered: None as long as it
        takes, 0 not at all (only a named channel waits)."""
        _check(_producer_set_linger(self._live(), _ns(seconds)))

    @property
    def is_connected(self):
        """Whether a consumer is attached now (it has not closed, and its process lives)."""
        connected = ctypes.c_bool()
        _check(_producer_is_connected(self._live(), ctypes.byref(connected)))
        return connected.value

    def wait_for_consumer(self, timeout=None):
        """Waits for a consumer to attach (returns at once when one is): Timeout when none did
        within `timeout` seconds, WouldBlock for a timeout of 0."""
        _check(_producer_wait_for_consumer(self._live(), _ns(timeout)))

    def close(self):
        """Closes the channel: the consumer gets every frame sent, then Disconnected. Waits up to
        the linger time for a consumer to take them, and raises Undelivered (with the count in
        `.frames`) when some were left. The handle is freed either way; closing again does
        nothing."""
        handle, self._handle = self._handle, None
        if not handle:
            return
        count = ctypes.c_uint64()
        result = _producer_close_checked(handle, ctypes.byref(count))
        if result != OK:
            error = _error(result)
            if isinstance(error, Undelivered):
                error.frames = count.value
            raise error

    @property
    def max_frame_len(self):
        """The largest frame this channel carries."""
        return _producer_max(self._live())

    _what = "producer"

    def send(self, data, timeout=None):
        """Copies `data` (bytes-like) into the channel as one frame."""
        data = bytes(data)
        _check(_send(self._live(), data, len(data), _ns(timeout)))


class Consumer(_End):
    """The receiving end of the named channel `name`, which a producer creates. `timeout`: how
    long to wait, in seconds, for the producer to create it (None: as long as it takes; 0, the
    default: not at all); NotFound when it did not appear in time."""

    def __init__(self, name, timeout=0, _handle=None):
        if _handle is None:
            _handle = _p()
            _check(_consumer_open_timeout(name.encode(), _ns(timeout), ctypes.byref(_handle)))
        self._handle = _handle

    @property
    def max_frame_len(self):
        """The largest frame this channel carries."""
        return _consumer_max(self._live())

    def recv(self, timeout=None):
        """The next frame, as bytes (read in place, copied once, released)."""
        handle = self._live()
        data, length = _p(), _size()
        _check(_recv(handle, ctypes.byref(data), ctypes.byref(length), _ns(timeout)))
        try:
            return ctypes.string_at(data, length.value) if length.value else b""
        finally:
            _check(_release(handle))

    def recv_into(self, buffer, timeout=None):
        """Copies the next frame into `buffer` (a writable bytes-like object) and returns its
        length. A frame longer than the buffer raises TooLarge with the length it needs in
        `.needed`, and stays queued."""
        view = memoryview(buffer).cast("B")
        if view.readonly:
            raise TypeError("recv_into needs a writable buffer")
        length = _size()
        cap = len(view)
        address = ctypes.addressof((ctypes.c_char * cap).from_buffer(view)) if cap else None
        result = _recv_copy(self._live(), address, cap, ctypes.byref(length), _ns(timeout))
        try:
            _check(result)
        except TooLarge as e:
            e.needed = length.value
            raise
        return length.value

    _what = "consumer"

    def _close_handle(self, handle):
        _consumer_close(handle)

    def __iter__(self):
        """Frames until the producer closes (Disconnected ends the loop)."""
        while True:
            try:
                yield self.recv()
            except Disconnected:
                return


def worker_connect():
    """In a process started by a zipc parent (a Worker or a Pool): (to_parent, from_parent)."""
    tx, rx = _p(), _p()
    _check(_worker_connect(ctypes.byref(tx), ctypes.byref(rx)))
    return Producer(None, _handle=tx), Consumer(None, _handle=rx)
