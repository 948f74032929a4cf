"""The shell: time, threads, processes, signals and the outside world, around the analysis and the library."""
