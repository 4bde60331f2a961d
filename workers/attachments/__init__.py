"""Attachment checks: a file is what its content is, never what its name or type claims.

``checker.inspect`` gives the content's verdict (identification by magic bytes, end markers,
foreign signatures, a full parse with pypdf or Pillow, a virus scan, cleaning); ``declared``
compares it with what the sender claimed. The attachment-check stage, ``omvant attachments
check`` and the benchmark all use the same functions.
"""
