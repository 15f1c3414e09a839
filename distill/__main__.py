from .cli import main

if __name__ == "__main__":  # a sweep's side-by-side workers import this module again (spawn): they must not run it
    raise SystemExit(main())
