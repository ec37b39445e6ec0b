"""uplift: audience segmentation and multi-treatment uplift targeting for re-skilling outreach campaigns."""

__version__ = "0.1.0"
