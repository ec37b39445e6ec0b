"""uplift: audience segmentation and multi-treatment uplift targeting for re-skilling outreach campaigns."""

import warnings

# pandera imports pyspark.pandas whenever PySpark is installed (the `spark` extra), and PySpark warns on
# import that it does not support pandas 3; the project uses PySpark only for batch scoring on Spark, where
# it passes pandas frames through Arrow, not the pandas-on-Spark API that warning is about.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

__version__ = "0.1.0"
