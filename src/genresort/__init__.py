"""genresort: sort music files into genre folders by listening to them."""
