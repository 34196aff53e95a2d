from .write import main

main()
