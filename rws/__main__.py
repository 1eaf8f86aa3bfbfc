from rws.cli import main

main()
