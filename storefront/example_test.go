package storefront_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/strata-dev/strata/storefront"
)

// Example opens the embedded SQLite default, seeds it and reads through the
// store: the stage-1 monolith of the guide in a few lines.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "storefront-example-")
	defer os.RemoveAll(dir)

	store, err := storefront.Open(ctx, "sqlite://"+filepath.Join(dir, "shop.db"), storefront.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if _, err := storefront.Seed(ctx, store, storefront.SeedConfig{Users: 100, Products: 50, Actions: 2000, RandSeed: 1}); err != nil {
		log.Fatal(err)
	}

	u, err := store.CreateUser(ctx, storefront.NewUser{Email: "Ada@Example.com", Name: "Ada", Region: "eu-west"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.ID, u.Email, u.Version)

	if _, err := store.RecordAction(ctx, u.ID, 7, storefront.Purchase); err != nil {
		log.Fatal(err)
	}
	recs, err := store.Recommend(ctx, u.ID, 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(recs), "recommendations")
	// Output:
	// 101 ada@example.com 1
	// 3 recommendations
}

// ExampleStore_UpdateUser changes one field; the version grows by one.
func ExampleStore_UpdateUser() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "storefront-example-")
	defer os.RemoveAll(dir)
	store, err := storefront.Open(ctx, "sqlite://"+filepath.Join(dir, "shop.db"), storefront.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	u, _ := store.CreateUser(ctx, storefront.NewUser{Email: "grace@example.com", Name: "Grace", Region: "us-east"})
	region := "eu-west"
	u, err = store.UpdateUser(ctx, u.ID, storefront.UserPatch{Region: &region})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Name, u.Region, u.Version)
	// Output: Grace eu-west 2
}

// ExampleSearchTerms shows that a query is only ever words.
func ExampleSearchTerms() {
	terms, _ := storefront.SearchTerms(`"Wireless" headphones OR title:* -cheap`)
	fmt.Println(terms)
	// Output: [wireless headphones or title cheap]
}

// ExampleSuggestPrefix shows what autocomplete looks up: the prefix as
// typed, leading spaces dropped and ASCII letters lower-cased, the
// trailing space kept.
func ExampleSuggestPrefix() {
	p, _ := storefront.SuggestPrefix("  Acme C")
	fmt.Printf("%q\n", p)
	_, err := storefront.SuggestPrefix("   ")
	fmt.Println(err)
	// Output:
	// "acme c"
	// prefix is blank; give the start of a product title
}
