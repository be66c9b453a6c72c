//! What a provider is for: the catalogue's grouping, for people choosing a template.

use std::fmt;

/// The kind of service a template connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Bookkeeping, invoicing, expenses.
    Accounting,
    /// Product and web analytics.
    Analytics,
    /// Bank accounts and brokerage.
    Banking,
    /// Mail, chat, calls, meetings.
    Communication,
    /// Customer relationship and sales tools.
    Crm,
    /// Design, images, 3D.
    Design,
    /// Code hosting, hosting, developer services.
    Developer,
    /// E-signature, legal and document workflows.
    Documents,
    /// Learning and research.
    Education,
    /// Games and game platforms.
    Gaming,
    /// Public services and open data.
    Government,
    /// Fitness, sport and health records.
    Health,
    /// Smart home, appliances, energy at home.
    Home,
    /// People, payroll, recruiting.
    Hr,
    /// Sign-in providers and identity servers.
    Identity,
    /// Newsletters, ads, reviews.
    Marketing,
    /// Music, video, podcasts, news.
    Media,
    /// What fits nowhere else (maps, genealogy, ...).
    Other,
    /// Payment services and marketplaces' payouts.
    Payments,
    /// Tasks, notes, forms, calendars, office suites.
    Productivity,
    /// Shops, marketplaces, tickets.
    Shopping,
    /// Social networks and communities.
    Social,
    /// File storage and sync.
    Storage,
    /// Help desks and customer support.
    Support,
    /// Telephone and internet operators.
    Telecom,
    /// Trips, rides, travel expenses.
    Travel,
}

impl Category {
    /// Every category, in display order.
    pub const ALL: [Category; 26] = [
        Category::Accounting,
        Category::Analytics,
        Category::Banking,
        Category::Communication,
        Category::Crm,
        Category::Design,
        Category::Developer,
        Category::Documents,
        Category::Education,
        Category::Gaming,
        Category::Government,
        Category::Health,
        Category::Home,
        Category::Hr,
        Category::Identity,
        Category::Marketing,
        Category::Media,
        Category::Other,
        Category::Payments,
        Category::Productivity,
        Category::Shopping,
        Category::Social,
        Category::Storage,
        Category::Support,
        Category::Telecom,
        Category::Travel,
    ];

    /// The name used in template files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Accounting => "accounting",
            Category::Analytics => "analytics",
            Category::Banking => "banking",
            Category::Communication => "communication",
            Category::Crm => "crm",
            Category::Design => "design",
            Category::Developer => "developer",
            Category::Documents => "documents",
            Category::Education => "education",
            Category::Gaming => "gaming",
            Category::Government => "government",
            Category::Health => "health",
            Category::Home => "home",
            Category::Hr => "hr",
            Category::Identity => "identity",
            Category::Marketing => "marketing",
            Category::Media => "media",
            Category::Other => "other",
            Category::Payments => "payments",
            Category::Productivity => "productivity",
            Category::Shopping => "shopping",
            Category::Social => "social",
            Category::Storage => "storage",
            Category::Support => "support",
            Category::Telecom => "telecom",
            Category::Travel => "travel",
        }
    }

    /// A heading for people.
    pub fn title(self) -> &'static str {
        match self {
            Category::Accounting => "Accounting and invoicing",
            Category::Analytics => "Analytics",
            Category::Banking => "Banking and brokerage",
            Category::Communication => "Communication",
            Category::Crm => "CRM and sales",
            Category::Design => "Design",
            Category::Developer => "Developer tools and hosting",
            Category::Documents => "Documents and e-signature",
            Category::Education => "Education and research",
            Category::Gaming => "Gaming",
            Category::Government => "Government and open data",
            Category::Health => "Health and fitness",
            Category::Home => "Home and devices",
            Category::Hr => "HR and recruiting",
            Category::Identity => "Identity providers",
            Category::Marketing => "Marketing",
            Category::Media => "Music, video and news",
            Category::Other => "Other",
            Category::Payments => "Payments",
            Category::Productivity => "Productivity",
            Category::Shopping => "Shopping and e-commerce",
            Category::Social => "Social networks",
            Category::Storage => "Storage",
            Category::Support => "Customer support",
            Category::Telecom => "Telecom operators",
            Category::Travel => "Travel and transport",
        }
    }

    /// Parses a category name; the error lists the known ones.
    pub fn parse(raw: &str) -> Result<Category, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == raw)
            .ok_or_else(|| {
                let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown category `{raw}`; expected one of {}",
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_parses_back_from_its_name() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Ok(c));
        }
    }

    #[test]
    fn an_unknown_category_names_the_known_ones() {
        let e = Category::parse("bank").unwrap_err();
        assert!(e.contains("banking"), "{e}");
    }
}
