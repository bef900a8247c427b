"""The programme's XLSForms, their reference lists, and the code that compiles and checks them."""
