from tools.bench_generate.cli import main
from utils.cli import run_main

run_main(main)
