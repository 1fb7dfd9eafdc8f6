"""voxhub plugin for Agora (Real-Time STT, Cloud Transcoder and AccessToken2 tokens)."""
