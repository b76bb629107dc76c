"""The web UI of the web role: pages, the UI's JSON routes under /ui/api, chats, documents and retrieval.

Built on the gateway: a logged-in browser is a Principal like an API key, and every model request the UI
makes goes through the gateway's pipeline (policy, limits, audit) as that user.
"""
