"""Benchmarks: ``python -m bench`` measures Rollcall side by side with face_recognition (dlib)."""
