-- figures with names longer than the report's 22-character column
gil.report("short", 1)
gil.report("a_figure_name_much_longer_than_the_column", 22)
gil.report("mid_sized_name", "three")
