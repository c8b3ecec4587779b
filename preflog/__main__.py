from preflog.cli import main

main()
