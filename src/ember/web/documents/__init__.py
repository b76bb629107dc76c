"""Documents for retrieval: upload (sniff, parse, chunk), indexing through the gateway's /api/embed as the
user, and the retriever the chat turns ask for passages and citations."""
