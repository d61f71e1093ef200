from tunesmith.cli.main import main

main()
