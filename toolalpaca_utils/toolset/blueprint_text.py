"""The code-written training tools, as text (read by :mod:`.blueprints`).

Each tool: a header ``## Name | Category | description``, then per function a line
``name: summary``, parameter lines ``  name[*] type[ lo..hi]: description[ | enum: a, b][ | values: a; b]``
(``*`` = required; ``values`` = realistic candidates where no generic generator knows the kind),
response lines ``  -> field type: description[ | enum: a, b]`` (an array described "... with a, b
and c" holds items with those fields) and request lines ``  ? template`` whose
``{slots}`` are parameters (every required parameter in every template).

Written for this project. The domains are everyday API kinds of the public-apis catalogue;
none is one of the ten real evaluation tools' functions (no airport lookup, calculator, city
search, country facts, currency conversion, jokes, public holidays, sun times, unit or time-zone
conversion): those stay unseen.
"""

TEXT = r"""
## Shelfmark | Books | Search a catalogue of books, their authors and editions.
searchBooks: Find books whose title or subject matches the words given.
  query* string: Words of the title or the subject | values: space exploration; medieval history; machine learning; climate change; jazz music; ancient Rome; gardening; chess openings
  language string: Two-letter ISO 639-1 code of the book's language
  limit integer 1..20: How many books to return
  -> books array: Matching books with title, author and year
  ? Find books about {query}.
  ? Are there any books on {query} in {language}?
  ? Give me {limit} books about {query}.
  ? I want to read something on {query}, what books are there?
getBookByIsbn: Get the details of one book from its ISBN.
  isbn* string: The book's 13-digit ISBN | values: 9780141439518; 9780062316097; 9780307474278; 9781400079988; 9780553380163; 9780199535569
  -> title string: Title of the book
  -> author string: Author of the book
  ? Which book has the ISBN {isbn}?
  ? Look up the book with ISBN {isbn}.
  ? Who wrote the book {isbn}?
listBooksByAuthor: List the books written by an author, newest first.
  author* string: Full name of the author
  published_after integer 1900..2024: Only books published after this year
  -> books array: The author's books with title and year
  ? What books has {author} written?
  ? List the books by {author} published after {published_after}.
  ? Which books did {author} publish after {published_after}?

## Reelbase | Entertainment | Information about films, their casts and release years.
searchMovies: Find films by words of their title.
  title* string: Words of the film's title | values: The Silent Harbor; Night Train; Blue Valley; The Last Orchard; Paper Moon; City of Glass
  year integer 1950..2024: Release year, to tell remakes apart
  -> movies array: Matching films with title, year and director
  ? Find the film {title}.
  ? Is there a movie called {title} from {year}?
  ? Search for movies named {title}.
getMovieCast: Get the main cast of a film.
  title* string: The film's title | values: The Silent Harbor; Night Train; Blue Valley; The Last Orchard; Paper Moon; City of Glass
  limit integer 1..20: How many actors to return
  -> cast array: Actors with actor and role
  ? Who acts in {title}?
  ? Name the top {limit} actors of {title}.
  ? Who was in the cast of {title}?
listMoviesByGenre: List well-rated films of a genre released in a given year.
  genre* string: The genre | enum: comedy, drama, horror, documentary, animation, thriller
  year* integer 1950..2024: Release year
  -> movies array: Films with title and rating
  ? Which {genre} films came out in {year}?
  ? Recommend some {genre} movies from {year}.
  ? List the best {genre} movies of {year}.

## Pantry Chef | Food & Drink | Recipes by ingredient, cuisine and diet, with their nutrition.
searchRecipes: Find recipes that use an ingredient.
  ingredient* string: An ingredient the recipe must use | values: chickpeas; salmon; mushrooms; lentils; spinach; chicken thighs; tofu; sweet potato
  cuisine string: The cuisine | enum: italian, mexican, indian, japanese, french, thai
  -> recipes array: Recipes with recipe and minutes
  ? What can I cook with {ingredient}?
  ? Find a {cuisine} recipe with {ingredient}.
  ? Give me recipes that use {ingredient}.
  ? I have {ingredient} at home, any {cuisine} ideas?
getRecipeNutrition: Get the calories and nutrients of one serving of a recipe.
  recipe* string: The recipe's name | values: lentil soup; mushroom risotto; chicken curry; pad thai; ratatouille; fish tacos
  -> calories number: Calories per serving
  -> protein_grams number: Protein per serving, in grams
  ? How many calories are in {recipe}?
  ? What are the nutrition facts of {recipe}?
  ? How much protein does a serving of {recipe} have?
listRecipesByDiet: List quick recipes that fit a diet.
  diet* string: The diet | enum: vegan, vegetarian, gluten-free, keto, paleo
  max_minutes integer 10..90: Longest cooking time, in minutes
  -> recipes array: Recipes with recipe and minutes
  ? Show me {diet} recipes.
  ? Which {diet} dishes can I make in under {max_minutes} minutes?
  ? I need a {diet} recipe that takes at most {max_minutes} minutes.

## Skycast | Weather | Current weather, forecasts and past weather for cities worldwide.
getCurrentWeather: Get the weather right now in a city.
  city* string: Name of the city
  units string: Units of the figures | enum: metric, imperial
  temperature_unit string: Unit of the temperature, a pint symbol such as 'degC' or 'degF'
  -> temperature number: Temperature now
  -> conditions string: Sky conditions | enum: sunny, cloudy, rain, snow, fog, thunderstorm
  ? What's the weather like in {city} right now?
  ? How warm is it in {city} at the moment, in {units} units?
  ? What's the temperature in {city} now, in {temperature_unit}?
  ? Is it raining in {city} now?
getForecast: Get the daily forecast for the next days in a city.
  city* string: Name of the city
  days integer 1..7: Number of days to forecast
  timezone string: IANA time zone of the dates, e.g. 'Europe/Paris'
  -> days array: Days with date, high, low and conditions
  ? What's the forecast for {city}?
  ? Give me the {days}-day forecast for {city}.
  ? What's the forecast for {city}, by {timezone} time?
  ? Will it be sunny in {city} over the next {days} days?
getPastWeather: Get the weather recorded in a city on a past date.
  city* string: Name of the city
  date* string: The date, YYYY-MM-DD
  -> temperature number: Mean temperature that day
  -> precipitation_mm number: Rain and snow that day, in mm
  ? What was the weather in {city} on {date}?
  ? Did it rain in {city} on {date}?
  ? How cold was it in {city} on {date}?

## Flightboard | Transportation | Flight schedules, departures and live flight status.
getFlightStatus: Get the status of a flight on a date.
  flight_number* string: Airline code and number | values: BA117; LH400; AF22; DL45; QF1; EK203; UA901; KL605
  date* string: Departure date, YYYY-MM-DD
  -> status string: Where the flight is | enum: scheduled, delayed, departed, landed, cancelled
  -> delay_minutes integer: Delay in minutes
  ? Is flight {flight_number} on time on {date}?
  ? What is the status of {flight_number} on {date}?
  ? Has {flight_number} of {date} been delayed?
searchFlights: Find flights between two airports on a date.
  origin_airport* string: IATA code of the departure airport
  destination_airport* string: IATA code of the arrival airport
  date* string: Departure date, YYYY-MM-DD
  -> flights array: Flights with flight_number, departure_time and arrival_time
  ? Find flights from {origin_airport} to {destination_airport} on {date}.
  ? Which flights go from {origin_airport} to {destination_airport} on {date}?
  ? I need to fly {origin_airport} to {destination_airport} on {date}, what are my options?
listDepartures: List the next departures from an airport.
  airport* string: IATA code of the airport
  limit integer 1..20: How many departures to return
  timezone string: IANA time zone to give the departure times in, e.g. 'America/Chicago'
  -> departures array: Departures with flight_number, destination_airport and departure_time
  ? What are the next departures from {airport}?
  ? Show the next flights leaving {airport}, with times in {timezone} time.
  ? Show the next {limit} flights leaving {airport}.
  ? Which flights leave {airport} soon?

## Tickerline | Finance | Stock quotes, price history and market movers.
getStockQuote: Get the latest price of a stock.
  symbol* string: The stock's ticker symbol | values: AAPL; MSFT; TSLA; NVDA; AMZN; KO; SAP; TM
  -> price number: Last traded price
  -> change_percent number: Change since the last close, in percent
  ? What is {symbol} trading at?
  ? Give me the latest quote for {symbol}.
  ? How is {symbol} doing today?
getPriceHistory: Get the daily closing prices of a stock between two dates.
  symbol* string: The stock's ticker symbol | values: AAPL; MSFT; TSLA; NVDA; AMZN; KO; SAP; TM
  start_date* string: First day, YYYY-MM-DD
  end_date* string: Last day, YYYY-MM-DD
  -> prices array: Trading days with date and close
  ? Show {symbol}'s closing prices from {start_date} to {end_date}.
  ? How did {symbol} move between {start_date} and {end_date}?
listTopMovers: List the stocks that moved most today on an exchange.
  exchange* string: The exchange | enum: NYSE, NASDAQ, LSE, TSE, XETRA
  limit integer 1..20: How many stocks to return
  -> movers array: Stocks with symbol and change_percent
  ? Which stocks moved most on the {exchange} today?
  ? Show the top {limit} movers on {exchange}.
  ? What are today's biggest gainers on the {exchange}?

## Wirefeed | News | News articles by topic, country and date.
searchNews: Find news articles about a topic.
  query* string: What the articles are about | values: electric cars; the Olympics; interest rates; wildfires; space launches; elections; vaccines; renewable energy
  from_date string: Oldest publication date, YYYY-MM-DD
  language string: Two-letter ISO 639-1 code of the articles' language
  -> articles array: Articles with headline, source and date
  ? Find news about {query}.
  ? What has been written about {query} since {from_date}?
  ? Show me articles on {query} in {language}.
listHeadlines: List today's top headlines of a country.
  country* string: Two-letter ISO 3166 code of the country
  category string: The section | enum: business, sports, science, health, technology, politics
  -> headlines array: Headlines with headline, source and date
  ? What are today's headlines in {country}?
  ? Show the top {category} headlines in {country}.
  ? What's in the news in {country} today?

## Tracklist | Music | Songs, albums and charts of artists worldwide.
searchSongs: Find songs by words of their title.
  title* string: Words of the song's title | values: Summer Rain; Golden Hour; Midnight Drive; Paper Planes; Northern Lights; River Song
  -> songs array: Songs with title, artist and year
  ? Find the song {title}.
  ? Who sings {title}?
  ? Search for songs called {title}.
listAlbumsByArtist: List the albums of an artist.
  artist* string: Name of the artist
  -> albums array: Albums with title and year
  ? What albums has {artist} released?
  ? List the albums by {artist}.
  ? Show me {artist}'s discography.
getChart: Get a country's current music chart.
  country* string: Two-letter ISO 3166 code of the country
  limit integer 1..20: How many songs to return
  -> songs array: Songs with position, title and artist
  ? What's at the top of the charts in {country}?
  ? Show the top {limit} songs in {country}.
  ? Which songs are popular in {country} right now?

## Hirewire | Jobs | Job offers and salary figures by role and city.
searchJobs: Find open positions for a job title in a city.
  job_title* string: The job title
  city* string: Name of the city
  -> jobs array: Offers with company, job_title and salary
  ? Are there any {job_title} jobs in {city}?
  ? Find {job_title} openings in {city}.
  ? I'm looking for work as a {job_title} in {city}.
getSalaryEstimate: Get the typical yearly salary of a job in a city.
  job_title* string: The job title
  city* string: Name of the city
  currency string: ISO 4217 code of the currency to give the salary in
  -> median_salary number: Median yearly salary
  -> currency string: ISO 4217 code of the currency
  ? How much does a {job_title} earn in {city}?
  ? What's a {job_title}'s salary in {city}, in {currency}?
  ? What is the typical salary of a {job_title} in {city}?
listCompanyJobs: List the open positions of a company.
  company* string: The company's name
  limit integer 1..20: How many offers to return
  -> jobs array: Offers with job_title and city
  ? Is {company} hiring at the moment?
  ? Show {limit} open positions at {company}.
  ? What jobs does {company} have open?

## Nutrient Table | Health | Nutrition facts of foods and comparisons between them.
getFoodNutrients: Get the nutrients of an amount of a food.
  food* string: The food | values: banana; oats; almonds; brown rice; cheddar cheese; avocado; eggs; broccoli
  amount number 1..500: How much of the food
  unit string: Mass unit of the amount, a name or symbol such as 'g', 'ounce' or 'lb'
  -> calories number: Calories in that amount
  -> protein_grams number: Protein in that amount
  ? How many calories are in {amount} {unit} of {food}?
  ? What nutrients does {food} have?
  ? How much protein is in {amount} {unit} of {food}?
compareFoods: Compare the nutrients of two foods, per 100 grams.
  first_food* string: The first food | values: banana; oats; almonds; brown rice; cheddar cheese; avocado
  second_food* string: The second food | values: apple; quinoa; walnuts; white rice; mozzarella; eggs
  -> foods array: Both foods with food, calories, protein_grams and sugar_grams
  ? Which is healthier, {first_food} or {second_food}?
  ? Compare {first_food} with {second_food}.
  ? Does {first_food} have more protein than {second_food}?
listFoodsRichIn: List the foods richest in a nutrient.
  nutrient* string: The nutrient | enum: protein, fiber, iron, calcium, vitamin C, potassium
  limit integer 1..20: How many foods to return
  -> foods array: Foods with food and grams_per_100g
  ? Which foods are rich in {nutrient}?
  ? Give me the top {limit} foods for {nutrient}.
  ? What should I eat to get more {nutrient}?

## Gallery Index | Art & Design | Artworks and artists of museum collections.
searchArtworks: Find artworks by words of their title or subject.
  query* string: Words of the title or subject | values: sunflowers; harbour at night; portrait of a woman; water lilies; mountain landscape; still life
  artist string: Name of the artist
  -> artworks array: Artworks with title, artist, year and museum
  ? Find paintings of {query}.
  ? Are there artworks of {query} by {artist}?
  ? Which museums have works showing {query}?
getArtworkDetails: Get the details of an artwork from its collection number.
  artwork_id* integer 1000..99999: The artwork's collection number
  -> title string: Title of the artwork
  -> museum string: Museum that holds it
  ? Tell me about artwork number {artwork_id}.
  ? What is the artwork with the id {artwork_id}?
listArtistsByCountry: List the best-known artists of a country.
  country* string: Two-letter ISO 3166 code of the country
  born_after integer 1400..1990: Only artists born after this year
  -> artists array: Artists with artist, birth_year and death_year
  ? Which famous painters come from {country}?
  ? List artists from {country} born after {born_after}.
  ? Who are the best-known artists of {country}?

## Scoreline | Sports & Fitness | Football results, league tables and player statistics.
getTeamResults: Get a team's match results in a season.
  team* string: The team's name | values: Arsenal; Real Madrid; Bayern Munich; Ajax; Juventus; Celtic; Benfica; Boca Juniors
  season* integer 2000..2024: Year the season started
  -> matches array: Matches with opponent, date and score
  ? How did {team} do in the {season} season?
  ? Show {team}'s results for {season}.
  ? What were {team}'s scores in {season}?
getLeagueTable: Get the standings of a league in a season.
  league* string: The league | enum: Premier League, La Liga, Bundesliga, Serie A, Ligue 1, Eredivisie
  season integer 2000..2024: Year the season started
  -> standings array: Teams with position and points
  ? Show the {league} table.
  ? Who topped the {league} in {season}?
  ? What were the {league} standings in {season}?
getPlayerStats: Get a player's statistics for a season.
  player* string: The player's full name
  season* integer 2000..2024: Year the season started
  -> goals integer: Goals scored
  -> appearances integer: Matches played
  ? How many goals did {player} score in {season}?
  ? Give me {player}'s stats for {season}.

## Campus Directory | Education | Universities, their programmes and rankings.
searchUniversities: Find universities in a country.
  country* string: Two-letter ISO 3166 code of the country
  name string: Words of the university's name | values: technology; medicine; arts; science
  -> universities array: Universities with name, city and website
  ? Which universities are there in {country}?
  ? Find universities in {country} with {name} in the name.
  ? List the universities of {country}.
getUniversityRanking: Get a university's world ranking in a year.
  university* string: The university's name | values: University of Oslo; Kyoto University; McGill University; ETH Zurich; University of Cape Town; Seoul National University
  year* integer 2010..2024: Year of the ranking
  -> rank integer: World rank that year
  ? What was the ranking of {university} in {year}?
  ? Where did {university} rank in {year}?
listProgrammes: List the degree programmes of a university in a subject.
  university* string: The university's name | values: University of Oslo; Kyoto University; McGill University; ETH Zurich; University of Cape Town; Seoul National University
  subject* string: The subject | enum: computer science, medicine, law, economics, physics, architecture
  -> programmes array: Programmes with degree and years
  ? Does {university} offer {subject}?
  ? Which {subject} degrees does {university} have?

## World Indicators | Open Data | Development indicators of countries by year.
getIndicator: Get one indicator of a country in a year.
  country* string: Two-letter ISO 3166 code of the country
  indicator* string: The indicator | enum: population, gdp, life expectancy, literacy rate, co2 emissions
  year* integer 1990..2022: The year
  -> value number: The indicator's value
  ? What was the {indicator} of {country} in {year}?
  ? Give me {country}'s {indicator} for {year}.
compareCountries: Compare one indicator of two countries in a year.
  first_country* string: Two-letter ISO 3166 code of the first country
  second_country* string: Two-letter ISO 3166 code of the second country
  indicator* string: The indicator | enum: population, gdp, life expectancy, literacy rate, co2 emissions
  -> values array: Both countries with country and value
  ? Compare the {indicator} of {first_country} and {second_country}.
  ? Which has the higher {indicator}, {first_country} or {second_country}?
listIndicatorTrend: Get an indicator of a country for every year of a range.
  country* string: Two-letter ISO 3166 code of the country
  indicator* string: The indicator | enum: population, gdp, life expectancy, literacy rate, co2 emissions
  start_year* integer 1990..2015: First year
  -> series array: Years with year and value
  ? How has {country}'s {indicator} changed since {start_year}?
  ? Show the {indicator} of {country} from {start_year} on.

## Wordsmith | Dictionaries | Definitions, synonyms and translations of words.
getDefinition: Get the definitions of a word.
  word* string: The word | values: serendipity; ephemeral; resilient; candid; meticulous; ubiquitous; benevolent; pragmatic
  -> definitions array: Definitions with definition and part_of_speech
  ? What does {word} mean?
  ? Define the word {word}.
  ? What is the meaning of the word {word}?
getSynonyms: Get words with the same meaning as a word.
  word* string: The word | values: happy; fast; difficult; beautiful; important; angry; smart; quiet
  limit integer 1..20: How many synonyms to return
  -> synonyms array: Synonyms with word and register
  ? What's another word for {word}?
  ? Give me {limit} synonyms of {word}.
  ? Which words mean the same as {word}?
translateWord: Translate a word into another language.
  word* string: The word | values: library; bridge; apple; friendship; window; river; morning; journey
  target_language* string: Two-letter ISO 639-1 code of the language to translate into
  -> translation string: The translated word
  ? How do you say {word} in {target_language}?
  ? Translate {word} into {target_language}.
  ? What is the {target_language} word for {word}?

## Staybook | Travel | Hotels, their prices and reviews.
searchHotels: Find hotels with free rooms in a city.
  city* string: Name of the city
  check_in_date* string: Arrival date, YYYY-MM-DD
  nights integer 1..14: Number of nights
  -> hotels array: Hotels with hotel, stars and price_per_night
  ? Find a hotel in {city} from {check_in_date}.
  ? I need a room in {city} for {nights} nights starting {check_in_date}.
  ? Which hotels in {city} are free on {check_in_date}?
getHotelReviews: Get the latest guest reviews of a hotel.
  hotel_id* integer 100..99999: The hotel's id
  limit integer 1..20: How many reviews to return
  -> reviews array: Reviews with score and text
  ? What do guests say about hotel {hotel_id}?
  ? Show {limit} reviews of hotel {hotel_id}.
getCityPrices: Get the average hotel price in a city for a month.
  city* string: Name of the city
  month* string: The month | enum: January, April, July, October, December
  currency string: ISO 4217 code of the currency for the price
  -> average_price number: Average price per night
  -> currency string: ISO 4217 code of the currency
  ? How expensive are hotels in {city} in {month}?
  ? What does a night in {city} cost in {month}, in {currency}?
  ? What does a night in {city} cost in {month}?

## Parcelpath | Shopping | Parcel tracking and shipping quotes.
trackParcel: Get where a parcel is now.
  tracking_number* string: The parcel's tracking number | values: 1Z999AA10123456784; JD014600006281; 00340434161094042557; LX123456789DE; RR987654321CN
  carrier string: The carrier | enum: ups, dhl, fedex, usps, royal-mail
  -> status string: Where the parcel is | enum: label created, in transit, out for delivery, delivered, held at customs
  -> expected_delivery_date string: Expected delivery date
  ? Where is my parcel {tracking_number}?
  ? Track the {carrier} package {tracking_number}.
  ? When will parcel {tracking_number} arrive?
quoteShipping: Get the price of sending a parcel between two countries.
  origin_country* string: Two-letter ISO 3166 code of the sending country
  destination_country* string: Two-letter ISO 3166 code of the receiving country
  weight_kg* number 0.1..30: Weight of the parcel in kilograms
  -> price number: Price of the cheapest service
  -> days integer: Days in transit
  ? How much to ship {weight_kg} kg from {origin_country} to {destination_country}?
  ? What does it cost to send a {weight_kg} kg parcel from {origin_country} to {destination_country}?
listPickupPoints: List parcel pickup points near a postcode.
  postcode* string: The postcode
  country* string: Two-letter ISO 3166 code of the country
  -> points array: Pickup points with address and opening_hours
  ? Where can I pick up parcels near {postcode} in {country}?
  ? List pickup points around {postcode}, {country}.
schedulePickup: Book a courier to collect a parcel at a postcode at a date and time.
  postcode* string: The postcode
  pickup_time* string: Local date and time of the pickup, YYYY-MM-DDTHH:MM:SS
  -> booking_id string: The booking reference
  -> window string: The collection window
  ? Book a courier pickup at {postcode} for {pickup_time}.
  ? Can someone collect my parcel from {postcode} on {pickup_time}?
  ? Schedule a parcel collection at {postcode}, {pickup_time}.

## Cleanair | Environment | Air quality and pollen levels in cities.
getAirQuality: Get the current air quality index of a city.
  city* string: Name of the city
  -> aqi integer: Air quality index
  -> main_pollutant string: The pollutant that drives the index | enum: PM2.5, PM10, ozone, NO2, SO2
  ? How clean is the air in {city}?
  ? What's the air quality in {city} today?
  ? Is the air in {city} safe to go jogging?
getPollenForecast: Get the pollen levels of a city on a date.
  city* string: Name of the city
  date* string: The date, YYYY-MM-DD
  pollen string: The pollen | enum: grass, birch, ragweed, olive
  -> level string: The pollen level | enum: low, moderate, high, very high
  ? Will the pollen be bad in {city} on {date}?
  ? What's the {pollen} pollen level in {city} on {date}?
getPollutionHistory: Get a city's daily air quality between two dates.
  city* string: Name of the city
  start_date* string: First day, YYYY-MM-DD
  end_date* string: Last day, YYYY-MM-DD
  -> days array: Days with date and aqi
  ? How was the air in {city} between {start_date} and {end_date}?
  ? Show {city}'s air quality from {start_date} to {end_date}.

## Eventful Nights | Events | Concerts, festivals and events by city and date.
searchEvents: Find events in a city on a date.
  city* string: Name of the city
  date* string: The date, YYYY-MM-DD
  category string: The kind of event | enum: concert, festival, theatre, sports, exhibition
  -> events array: Events with event, venue and time
  ? What's on in {city} on {date}?
  ? Are there any {category} events in {city} on {date}?
  ? Find something to do in {city} on {date}.
getEventTickets: Get the ticket prices of an event.
  event_id* integer 1000..99999: The event's id
  -> prices array: Ticket categories with category and price
  ? How much are tickets for event {event_id}?
  ? What do tickets to event {event_id} cost?
listArtistTour: List the upcoming concerts of an artist.
  artist* string: Name of the artist
  country string: Two-letter ISO 3166 code of the country
  -> concerts array: Concerts with city, venue and date
  ? When is {artist} touring?
  ? Is {artist} playing in {country} soon?
  ? List {artist}'s upcoming concerts.

## Motorspec | Vehicle | Car models, their specifications and fuel economy.
listModels: List the models a car maker sold in a year.
  make* string: The car maker | values: Toyota; Volkswagen; Ford; Honda; BMW; Hyundai; Renault; Volvo
  year* integer 1995..2024: The model year
  -> models array: Models with model and body_type
  ? Which models did {make} sell in {year}?
  ? List the {year} {make} models.
getFuelEconomy: Get the fuel consumption of a car model.
  make* string: The car maker | values: Toyota; Volkswagen; Ford; Honda; BMW; Hyundai; Renault; Volvo
  model* string: The model | values: Corolla; Golf; Focus; Civic; Clio; Tucson; XC60; Model 3
  year integer 1995..2024: The model year
  -> litres_per_100km number: Fuel consumption
  ? How much fuel does a {make} {model} use?
  ? What's the fuel economy of the {year} {make} {model}?
decodeVin: Decode a vehicle identification number.
  vin* string: The 17-character VIN | values: 1HGCM82633A004352; WVWZZZ1JZXW000001; JTDBR32E720123456; 5YJ3E1EA7KF317000
  -> make string: Maker of the vehicle
  -> year integer: Model year
  ? What car has the VIN {vin}?
  ? Decode the VIN {vin}.
  ? Which make and year is VIN {vin}?

## Quakewatch | Science & Math | Earthquakes recorded worldwide.
listEarthquakes: List the earthquakes of at least a magnitude between two dates.
  min_magnitude* number 2..8: Smallest magnitude to include
  start_date* string: First day, YYYY-MM-DD
  end_date string: Last day, YYYY-MM-DD
  -> earthquakes array: Earthquakes with place, time and magnitude
  ? Which earthquakes above magnitude {min_magnitude} happened since {start_date}?
  ? List quakes of magnitude {min_magnitude} or more between {start_date} and {end_date}.
getEarthquakesNear: List the earthquakes near a point.
  latitude* number: Latitude of the point, in degrees
  longitude* number: Longitude of the point, in degrees
  radius_km integer 10..1000: Search radius in kilometres
  -> earthquakes array: Earthquakes with distance and magnitude
  ? Were there earthquakes near {latitude}, {longitude}?
  ? Any quakes within {radius_km} km of latitude {latitude}, longitude {longitude}?
getCountryQuakes: Count the earthquakes recorded in a country in a year.
  country* string: Two-letter ISO 3166 code of the country
  year* integer 1990..2024: The year
  -> count integer: Number of earthquakes
  -> strongest number: Largest magnitude
  ? How many earthquakes did {country} have in {year}?
  ? What was the strongest quake in {country} in {year}?

## Coinpulse | Cryptocurrency | Cryptocurrency prices and market data.
getCoinPrice: Get the price of a coin in a currency.
  coin* string: The coin | enum: bitcoin, ethereum, solana, cardano, dogecoin, litecoin
  currency string: Three-letter ISO 4217 code of the currency to price in
  -> price number: Price of one coin
  ? What's the price of {coin}?
  ? How much is one {coin} in {currency}?
  ? Give me the current {coin} price in {currency}.
getCoinHistory: Get the price of a coin on a past date.
  coin* string: The coin | enum: bitcoin, ethereum, solana, cardano, dogecoin, litecoin
  date* string: The date, YYYY-MM-DD
  -> price number: Closing price that day
  ? What was {coin} worth on {date}?
  ? How much did one {coin} cost on {date}?
listTopCoins: List the largest coins by market value.
  limit integer 1..20: How many coins to return
  currency string: Three-letter ISO 4217 code of the currency to price in
  -> coins array: Coins with coin, price and market_value
  ? Which are the {limit} biggest cryptocurrencies?
  ? List the largest coins by market value in {currency}.
  ? Show the top {limit} coins priced in {currency}.
"""
