from video_emotions.cli import app

app(prog_name="video-emotions")
