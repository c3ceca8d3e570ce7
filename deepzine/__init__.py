"""DeepZine: a Progressive Growing GAN of book pages, from PDFs to sampled pages and latent-space movies."""

__version__ = '2.1.0'
