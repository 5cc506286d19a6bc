"""The leaves every layer of the service shares: ids and names, the retention policy, the domain
errors, uploads and image decoding, face thumbnails. They import nothing else of ``app``."""
