"""Domain logic over the object store: classes, students, sessions, galleries, heads.

Every function here is synchronous and may block (storage, models); routers call them through
``run_in_threadpool`` so the event loop never waits on them.
"""
