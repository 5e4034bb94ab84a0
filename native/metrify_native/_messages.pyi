from collections.abc import Sequence

def decode_messages(
    messages: Sequence[str | bytes | None],
    names: tuple[str, ...],
    kinds: tuple[int, ...],
    max_records: int,
) -> tuple[bytes, bytes, int, list[bytearray | tuple[bytes, bytes, bytes]]]: ...
