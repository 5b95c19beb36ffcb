from gochat.cli import main

main()
