from modelwerk.cli import main

main()
