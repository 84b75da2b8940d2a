from toylab.cli import app

app(prog_name="toylab")
