from tekudasai.cli import main

main()
